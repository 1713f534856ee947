"""``python -m mmspec.leaderboard`` = ``mmspec-leaderboard``."""

from mmspec.leaderboard.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
