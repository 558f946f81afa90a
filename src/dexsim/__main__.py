"""``python -m dexsim`` = the ``dexsim`` command."""

from .cli import main

if __name__ == "__main__":
    main()
