"""``ssps serve`` and ``python -m serve``: start the REST service with uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys

from serve import settings as settings_module


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssps serve",
        description="Serve speaker verification over HTTP (OpenAPI docs at /docs). Every flag "
        "also reads an SSPS_SERVE_* environment variable; the flag wins.",
    )
    settings_module.add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_module.from_args(args)
    except ValueError as err:
        print(f"ssps serve: error: {err}", file=sys.stderr)
        return 2
    import uvicorn  # imported late: --help stays fast

    import ssps
    from serve.app import create_app

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:  # load before listening, so a bad model ref is one clear error, not a traceback
        model = ssps.load_model(settings.model, providers=settings.providers, threads=settings.threads, precision=settings.precision,
                                vad=settings.vad)
    except ssps.SSPSError as err:
        print(f"ssps serve: error: {err}", file=sys.stderr)
        return 2
    app = create_app(settings, model=model)
    # One process: the model, the micro-batcher and the speaker store live in it. Scale out
    # with more containers, not uvicorn workers (each would load its own model copy).
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                            proxy_headers=True, server_header=False)
    try:
        uvicorn.Server(config).run()
    except SystemExit as exit_:  # uvicorn exits with 3 when the app fails to start
        return int(exit_.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
