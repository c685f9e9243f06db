#!/usr/bin/python3
# panoramisk (Debian's python3-panoramisk) against bench/stream's fake server: log in with events on, count
# every event; answer the warm-up marker (Event: UserEvent / UserEvent: WarmupEnd) with a Ping, which starts
# the measured stream; at the end marker (UserEvent: StreamEnd) time sequential Pings. Prints one JSON line. Run with Debian's /usr/bin/python3, where apt installs the package.
#
# usage: /usr/bin/python3 panoramisk-client.py PORT PINGS WARMUP
import asyncio
import json
import sys
import time

from panoramisk import Manager


async def main(port, pings, warmup):
    loop = asyncio.get_running_loop()
    end = loop.create_future()
    state = {"events": 0, "warm_events": -1, "ended": False, "started": None, "warm_ping": None}

    def on_event(manager, event):
        if state["ended"]:
            return
        marker = event.get("UserEvent") if event.get("Event") == "UserEvent" else None
        if marker == "WarmupEnd":
            state["warm_events"] = state["events"]
            state["warm_ping"] = manager.send_action({"Action": "Ping"})
            state["started"] = time.perf_counter()
        elif marker == "StreamEnd":
            state["ended"] = True
            if not end.done():
                end.set_result(time.perf_counter())
        else:
            state["events"] += 1

    manager = Manager(
        loop=loop,
        host="127.0.0.1",
        port=port,
        username="bench",
        secret="bench",
        events="on",
        # No keep-alive Ping or reconnect during the measurement.
        ping_delay=3600,
        ping_interval=3600,
        reconnect_timeout=3600,
    )
    manager.register_event("*", on_event)
    await manager.connect()
    finished = await asyncio.wait_for(end, timeout=300)
    elapsed = finished - state["started"]

    samples = []
    for i in range(warmup + pings):
        t0 = time.perf_counter_ns()
        response = await asyncio.wait_for(manager.send_action({"Action": "Ping"}), timeout=5)
        us = (time.perf_counter_ns() - t0) / 1000
        if response.get("Ping") != "Pong":
            raise RuntimeError("no Pong: %r" % (response,))
        if i >= warmup:
            samples.append(round(us, 2))
    manager.close()
    return state, elapsed, samples


def run():
    port, pings, warmup = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    out = {"client": "panoramisk", "events": 0, "warm_events": -1, "ended": False, "elapsed_seconds": 0,
           "ping_us": [], "error": None}
    try:
        state, elapsed, samples = asyncio.run(main(port, pings, warmup))
        out.update(events=state["events"], warm_events=state["warm_events"], ended=state["ended"],
                   elapsed_seconds=elapsed, ping_us=samples)
    except BaseException as e:  # report, never hang: the runner reads this line
        out["error"] = "%s: %s" % (type(e).__name__, e)
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    run()
