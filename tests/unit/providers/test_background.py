from __future__ import annotations

import asyncio

from providers.background import stop_task


async def _swallows_the_first_cancel(swallowed: list[bool]) -> None:
    """Behaves like a loop whose inner `wait_for` dropped a cancel (Python 3.11 + redis-py)."""
    while True:
        try:
            await asyncio.sleep(0.001)
        except asyncio.CancelledError:
            if not swallowed:
                swallowed.append(True)
                task = asyncio.current_task()
                assert task is not None
                task.uncancel()
                continue
            raise


async def test_a_loop_that_swallowed_a_cancel_is_still_stopped() -> None:
    swallowed: list[bool] = []
    task = asyncio.create_task(_swallows_the_first_cancel(swallowed))
    await asyncio.sleep(0)
    await stop_task(task, timeout_s=5)
    assert swallowed == [True]
    assert task.done() and task.cancelled()


async def test_a_task_that_will_not_stop_is_given_up_on_after_the_timeout() -> None:
    release = asyncio.Event()

    async def stubborn_until_released() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                assert task is not None
                task.uncancel()

    task = asyncio.create_task(stubborn_until_released())
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await stop_task(task, timeout_s=0.3)
    assert not task.done()
    assert loop.time() - started < 2
    release.set()  # leave nothing running behind the test
    await asyncio.wait_for(task, timeout=5)


async def test_none_and_finished_tasks_are_fine() -> None:
    await stop_task(None)
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    await stop_task(done)
    assert done.done()
