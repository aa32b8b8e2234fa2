"""``python -m fake_openai``: serve until killed, after printing the base URL on one line."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import OpenAIServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fake_openai", description="OpenAI-compatible test server (prints its base URL)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (default)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each chat answer")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between streamed chunks")
    parser.add_argument("--chunk-size", type=int, default=8, help="characters per streamed chunk")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="probability of a random fault")
    parser.add_argument("--fault-status", type=int, default=429, help="status code of random faults")
    parser.add_argument("--retry-after", default="0", help="Retry-After of random faults")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)

    server = OpenAIServer(
        args.host,
        args.port,
        latency=args.latency,
        chunk_delay=args.chunk_delay,
        chunk_size=args.chunk_size,
        fault_rate=(args.fault_rate, args.fault_status) if args.fault_rate > 0 else None,
        retry_after=args.retry_after,
        seed=args.seed,
        verbose=args.verbose,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    server.start()
    print(server.base_url, flush=True)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
