#!/usr/bin/env -S npx tsx
/** Process entry of the `rbm-dispatch` command line (src/cli/main.ts); the exit code is the command's. */
import { main } from '../src/cli/main.ts';

process.exitCode = await main(process.argv);
