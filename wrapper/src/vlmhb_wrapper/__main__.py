"""``python -m vlmhb_wrapper serve ...``."""

from vlmhb_wrapper.cli import main

if __name__ == "__main__":
    main()
