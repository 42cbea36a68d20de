// sgdnoise-cli: reproduce the paper's figures, predict any model of the library, explore stability.
//
// Every failure ends with one line on standard error and a non-zero exit code (see `ExitStatus`);
// `--help` and `--version` print to standard output and exit 0.

runCommandLine()
