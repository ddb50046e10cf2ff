"""`python -m forensics`: the same command line as the `forensics` script."""

from forensics.cli import main

if __name__ == "__main__":
    main()
