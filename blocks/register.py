"""Block documents as code: save the environment's AutoTalk settings as a credentials block.

    AUTOTALK_API_KEY=sk-... python blocks/register.py --name autotalk [--overwrite]

Registers the ``AutoTalk Credentials`` block type on the Prefect API in use
(``PREFECT_API_URL``), then creates the document ``--name`` from ``AUTOTALK_*`` (environment
or ``.env``). Idempotent: a second run with the same values changes nothing; other values are
refused unless ``--overwrite`` is given. The same job as ``autotalk-prefect blocks save``.
"""

from __future__ import annotations

import argparse
import sys

from autotalk_prefect.credentials import MissingCredentialsError, save_credentials_block


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="Block document name, e.g. 'autotalk'.")
    parser.add_argument(
        "--overwrite", action="store_true", help="Replace a document that holds other values."
    )
    args = parser.parse_args(argv)
    try:
        outcome = save_credentials_block(args.name, overwrite=args.overwrite)
    except (MissingCredentialsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"AutoTalkCredentials block {args.name!r}: {outcome.value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
