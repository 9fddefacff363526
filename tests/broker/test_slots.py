"""Slots (broker/slots.py): a request waits for a free slot, oldest first, and no slot is ever lost,
whatever is cancelled when."""

from __future__ import annotations

import asyncio

from podctl.broker.slots import Slots


def test_waiters_get_released_slots_oldest_first() -> None:
    async def scenario() -> list[int]:
        slots, order = Slots(1), []
        await slots.acquire()

        async def wait(n: int) -> None:
            await slots.acquire()
            order.append(n)

        tasks = [asyncio.create_task(wait(n)) for n in range(3)]
        await asyncio.sleep(0)
        for _ in range(3):
            slots.release()
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(scenario()) == [0, 1, 2]


def test_a_cancelled_waiter_loses_no_slot_whenever_it_is_cancelled() -> None:
    async def scenario() -> None:
        slots = Slots(1)
        await slots.acquire()
        waiting = asyncio.create_task(slots.acquire())
        handed = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)
        waiting.cancel()  # cancelled while it waits
        slots.release()  # goes past the cancelled one to `handed`...
        handed.cancel()  # ...which is cancelled before it runs: the slot must pass on
        await asyncio.gather(waiting, handed, return_exceptions=True)
        await asyncio.wait_for(slots.acquire(), timeout=1)  # the one slot is free again
        late = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)
        assert not late.done(), "there was one slot, not two"
        late.cancel()

    asyncio.run(scenario())
