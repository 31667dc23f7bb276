# SPDX-License-Identifier: Apache-2.0
"""The floor's sliding window, for the drain and evacuation benchmarks.

A floor is the least a bare script can ask of Nova to empty a host. Firing
every move at once is not it: on the lab's one-process Nova the burst
overloads the box, and a contender that does more work then beats the
"floor" (a ratio below 1). The floor keeps at most ``window`` moves in
flight instead, the way the peers benchmark's floor does
(``peers_logic.window_step``), and the benchmark says which window it used.
"""

import time

try:  # imported as benchmarks.floor
    from benchmarks import peers_logic as logic
except ImportError:  # run as a script: this folder is sys.path[0]
    import peers_logic as logic


def run_window(servers, window, fire, read, poll=0.25, timeout=600.0,
               clock=time.monotonic, sleep=time.sleep):
    """Ask for one move per server, at most ``window`` in flight, until all finished.

    :param servers: the server ids, in the order to ask.
    :param window: at most this many moves asked and not yet finished (>= 1).
    :param fire: ``fire(server_id)`` asks Nova for the move.
    :param read: ``read()`` returns ``(finished ids, failed ids)`` from the
        source host's migration records.
    :param poll: seconds between reads.
    :param timeout: seconds before giving up.
    :returns: ``{"seconds", "window", "max_in_flight", "reads"}`` (``window``
        as used: at most the number of servers).
    :raises RuntimeError: a move failed, or not every move finished in time.
    """
    started = clock()
    pending, in_flight, settled = list(servers), [], set()
    finished, reads, max_in_flight = set(), 0, 0
    while True:
        fire_now, pending, in_flight = logic.window_step(pending, in_flight, settled, window)
        for server_id in fire_now:
            fire(server_id)
        max_in_flight = max(max_in_flight, len(in_flight))
        if not pending and not in_flight:
            return {"seconds": clock() - started, "window": min(window, len(servers)),
                    "max_in_flight": max_in_flight, "reads": reads}
        if clock() - started > timeout:
            raise RuntimeError(f"floor: {len(finished)} of {len(servers)} moves finished "
                               f"within {timeout} s")
        sleep(poll)
        finished, failed = (set(ids) for ids in read())
        reads += 1
        failed &= set(servers)
        if failed - finished:
            raise RuntimeError(f"floor: {len(failed - finished)} moves failed "
                               f"({sorted(failed - finished)[:5]})")
        settled = finished
