from __future__ import annotations

from ml_tracelens.cli import main

if __name__ == "__main__":
    main()
