"""An accepted association whose own thread waits for work instead of polling for it.

pynetdicom's association thread turns its loop every millisecond (``time.sleep(0.001)``) to
look for a decoded DIMSE message, a release or an abort: a thousand wake-ups a second per
association, each taking the GIL from the threads doing the work, and a request waits up to a
millisecond before it is served. Measured under four storing associations: 540 futex calls an
instance in the listener, most of them these wake-ups handing the GIL around.

Here the thread waits on an event that is set whenever the DUL hands it something (a DIMSE
message, or a release or abort primitive), and otherwise looks at its timers at the
``idle_check_seconds`` pace. Only the acceptor side is changed: nothing outside the
association's own thread pauses an acceptor's reactor (its handlers run in that thread, with
``_is_paused`` set), while a requestor's ``send_*`` methods, called from other threads, wait for
its reactor to reach its checkpoint and need the short turns.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, cast

from pynetdicom import evt
from pynetdicom.association import Association

LOGGER = logging.getLogger("pynetdicom.assoc")  # where pynetdicom's own reactor logs


class ArchiveAssociation(Association):
    """pynetdicom's acceptor with its reactor loop waiting on ``_work``."""

    idle_check_seconds = 0.05
    """How often the timers (network timeout) and the DUL thread are looked at when nothing
    arrives: they are seconds long, so this costs nothing in precision."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._work = threading.Event()
        _signal_on_put(self.dimse.msg_queue, self._work)
        _signal_on_put(self.dul.to_user_queue, self._work)

    def _run_reactor(self) -> None:
        """pynetdicom 3's ``Association._run_reactor``, its one-millisecond sleep replaced by a
        wait for work. The event is cleared before the queues are read, so something put
        after the read sets it again and the next wait returns at once."""
        self._is_paused = False
        while not self._kill:
            self._work.wait(self.idle_check_seconds)
            self._work.clear()

            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False

            context_id, msg = self.dimse.get_msg(block=False)
            if msg:
                self._serve_request(msg, cast(int, context_id))
                self._work.set()  # another message may have come while this one was served

            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                LOGGER.info("Association Released")
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return

            if self.acse.is_aborted():
                log_msg = "Association Aborted"
                if self.acse.is_aborted("a-p-abort"):
                    log_msg += " (A-P-ABORT)"
                LOGGER.info(log_msg)
                self.dul.receive_pdu(wait=False)  # so that EVT_ACSE_RECV fires
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return

            if not self.dul.is_alive():
                self.kill()
                return

            if self.dul.idle_timer_expired():
                LOGGER.error("Network timeout reached")
                if self.network_timeout_response == "A-RELEASE":
                    self._is_paused = True
                    self._reactor_checkpoint.wait()
                    self.release()
                    self._is_paused = False
                else:
                    self.abort()
                self.kill()
                return


def _signal_on_put(queue: Any, work: threading.Event) -> None:
    """Make ``queue.put`` also set ``work``."""
    put = queue.put

    def put_and_signal(item: Any, block: bool = True, timeout: float | None = None) -> None:
        put(item, block, timeout)
        work.set()

    queue.put = put_and_signal
