#!/usr/bin/env node
// Fails when a line in src/, jobs/ or workers/ (*.ts) is longer than 140 characters.
// Biome's formatter breaks code at 140 but cannot break a long string, template literal or comment: this catches those.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const MAX = 140;
const ROOTS = ['src', 'jobs', 'workers'];

function* tsFiles(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* tsFiles(path);
    else if (entry.name.endsWith('.ts')) yield path;
  }
}

let over = 0;
let files = 0;
for (const root of ROOTS) {
  for (const file of tsFiles(root)) {
    files += 1;
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        const length = [...line].length;
        if (length > MAX) {
          over += 1;
          console.error(`${file}:${i + 1}: ${length} characters (max ${MAX})`);
        }
      });
  }
}
if (over > 0) {
  console.error(`line-length: ${over} line(s) over ${MAX} characters in ${ROOTS.join('/, ')}/`);
  process.exit(1);
}
console.log(`line-length: ${files} files in ${ROOTS.join('/, ')}/, no line over ${MAX} characters`);
