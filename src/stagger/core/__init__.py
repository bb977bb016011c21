"""Pure decisions: no I/O, no asyncio, no clock reads, no logging. Time comes in as `now`."""
