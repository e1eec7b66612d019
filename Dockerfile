# The gateway image used by compose.yaml: the source tree installed in place (editable), so
# `gateway migrate` finds migrations/ next to the code.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY routing routing
COPY providers providers
COPY migrations migrations
RUN pip install --no-cache-dir --disable-pip-version-check -e .

ENV GATEWAY_HOST=0.0.0.0 GATEWAY_PORT=8000
EXPOSE 8000
CMD ["gateway", "serve", "--no-migrate"]
