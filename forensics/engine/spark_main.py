"""The Spark engine's entry point for spark-submit: `forensics run CASE_FILE --out DIR --engine spark`.

    spark-submit --master yarn "$(python3 -c 'import forensics.engine.spark_main as m; print(m.__file__)')" \\
        case.toml --warehouse s3://bucket/case-17/warehouse --out /home/hadoop/case-out

(forensics installed with its spark extra on the driver and every executor), or on this machine
`python -m forensics.engine.spark_main case.toml --out DIR`.

spark-submit gives the master and the cluster's settings to the session; the arguments are those
of `forensics run` (the engine is always spark). Exit status 1 with a message for a problem the user
can fix, as the CLI does.
"""

from __future__ import annotations

import sys

from forensics.cli import main as cli_main


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--engine" not in args:
        args += ["--engine", "spark"]
    sys.argv = ["forensics", "run", *args]
    cli_main()


if __name__ == "__main__":
    main()
