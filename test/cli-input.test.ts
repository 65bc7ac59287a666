/**
 * The CLI's input files, no I/O: CSV and JSONL into validated messages and
 * events with their line numbers, problems addressed by line and column,
 * READ lines routed to events, per-line idempotency keys for safe re-runs.
 */
import { describe, expect, it } from 'vitest';
import { formatFromPath, lineKey, normalizeTtl, parseInput, type ParsedLine, type ParseOptions } from '../src/cli/input.ts';

async function parse(text: string, options: ParseOptions): Promise<ParsedLine[]> {
  const out: ParsedLine[] = [];
  for await (const line of parseInput(text, options)) out.push(line);
  return out;
}

const invalid = (lines: ParsedLine[]) =>
  lines.flatMap((l) => (l.kind === 'invalid' ? l.problems.map((p) => ({ line: l.line, ...p })) : []));

describe('CSV', () => {
  it('turns each row into a message, with its line number and the optional columns', async () => {
    const csv = [
      '\ufeffto,text,Agent_ID,trafficType,ttl,smsFallback,idempotencyKey',
      '+12223334444,Your order has shipped,,transaction,10m,,',
      '',
      '+12223334445,"Two lines,\nand a comma",agent-a,,90,Code 1234,order-77',
    ].join('\r\n');
    const lines = await parse(csv, { format: 'csv' });
    expect(lines).toEqual([
      {
        line: 2,
        kind: 'message',
        item: { to: '+12223334444', contentMessage: { text: 'Your order has shipped' }, messageTrafficType: 'TRANSACTION', ttl: '600s' },
      },
      {
        line: 5,
        kind: 'message',
        item: {
          to: '+12223334445',
          contentMessage: { text: 'Two lines,\nand a comma' },
          agentId: 'agent-a',
          ttl: '90s',
          fallback: { sms: { text: 'Code 1234' } },
          idempotencyKey: 'order-77',
        },
      },
    ]);
  });

  it('reports every bad row by line and column, and masks phone numbers in problems', async () => {
    const csv = [
      'to,text,ttl',
      '+15551234561,ok,',
      '15551234562,no plus,',
      '+15551234563,,',
      '+15551234564,ttl,forever',
      '+15551234565,too,many,columns',
      '+15551234566,fine,',
    ].join('\n');
    const problems = invalid(await parse(csv, { format: 'csv' }));
    expect(problems.map((p) => [p.line, p.path])).toEqual([
      [3, 'to'],
      [4, 'text'],
      [5, 'ttl'],
      [6, ''],
    ]);
    expect(problems[3]!.problem).toMatch(/columns length is 3, got 4/);
    expect(problems[0]!.problem).toContain('got "15551***4562"');
  });

  it('refuses a header with an unknown or a missing column, at line 1', async () => {
    const lines = await parse('phone,text,color\n+12223334444,hi,red\n', { format: 'csv' });
    expect(lines).toEqual([
      {
        line: 1,
        kind: 'invalid',
        problems: [
          { path: 'phone', problem: expect.stringMatching(/unknown column/) },
          { path: 'color', problem: expect.stringMatching(/unknown column/) },
          { path: 'to', problem: expect.stringMatching(/missing column/) },
        ],
      },
    ]);
  });

  it('gives rows without a key base:line-N, so a re-run derives the same keys', async () => {
    const csv = 'to,text,idempotencyKey\n+12223334444,a,\n+12223334445,b,own-key\n';
    const lines = await parse(csv, { format: 'csv', idempotencyBase: 'spring' });
    expect(lines.map((l) => (l.kind === 'message' ? l.item.idempotencyKey : l.kind))).toEqual(['spring:line-2', 'own-key']);
    expect(lineKey('spring', 2)).toBe('spring:line-2');
  });
});

describe('JSONL', () => {
  const message = (text: string, extra: object = {}) =>
    JSON.stringify({ to: '+12223334444', messageTrafficType: 'TRANSACTION', contentMessage: { text }, ...extra });

  it('routes messages to messages and READ receipts to events, skipping blank lines but counting them', async () => {
    const text = [
      message('one'),
      '',
      JSON.stringify({ to: '+12223334444', eventType: 'READ', messageId: 'user-msg-1' }),
      message('two'),
    ].join('\n');
    const lines = await parse(text, { format: 'jsonl' });
    expect(lines.map((l) => [l.line, l.kind])).toEqual([
      [1, 'message'],
      [3, 'event'],
      [4, 'message'],
    ]);
    expect(lines[1]).toEqual({ line: 3, kind: 'event', item: { to: '+12223334444', eventType: 'READ', messageId: 'user-msg-1' } });
  });

  it('reports lines that are not JSON, not objects, or not valid, each with its line number', async () => {
    const text = [
      message('ok'),
      '{"to": "+12223334444", ',
      '[1,2]',
      JSON.stringify({ to: '+12223334444', eventType: 'READ' }),
      message('x', { colour: 'red' }),
      message('ok too'),
    ].join('\n');
    const problems = invalid(await parse(text, { format: 'jsonl' }));
    expect(problems).toEqual([
      { line: 2, path: '', problem: expect.stringMatching(/^not JSON/) },
      { line: 3, path: '', problem: expect.stringMatching(/expected a JSON object/) },
      { line: 4, path: 'messageId', problem: expect.stringMatching(/required/) },
      { line: 5, path: 'colour', problem: expect.stringMatching(/unknown field/) },
    ]);
  });

  it('keys lines per line number unless they carry a key or an ID of their own', async () => {
    const id = '0b9c3f4e-2f7a-4d1b-9e8c-5a6b7c8d9e0f';
    const text = [
      message('a'),
      message('b', { idempotencyKey: 'mine' }),
      message('c', { messageId: id }),
      JSON.stringify({ to: '+12223334444', eventType: 'READ', messageId: 'user-msg-1' }),
      JSON.stringify({ to: '+12223334444', eventType: 'READ', messageId: 'user-msg-2', eventId: id }),
    ].join('\n');
    const keys = (await parse(text, { format: 'jsonl', idempotencyBase: 'b1' })).map((l) =>
      l.kind === 'invalid' ? 'invalid' : l.item.idempotencyKey,
    );
    expect(keys).toEqual(['b1:line-1', 'mine', undefined, 'b1:line-4', undefined]);
  });

  it('refuses an expireTime in the past, as the service would', async () => {
    const problems = invalid(await parse(message('late', { expireTime: '2020-01-01T00:00:00Z' }), { format: 'jsonl' }));
    expect(problems).toEqual([{ line: 1, path: 'expireTime', problem: expect.stringMatching(/in the future/) }]);
  });
});

describe('helpers', () => {
  it('tells the format by extension', () => {
    expect([
      formatFromPath('a.csv'),
      formatFromPath('A.CSV'),
      formatFromPath('b.jsonl'),
      formatFromPath('c.ndjson'),
      formatFromPath('d.txt'),
    ]).toEqual(['csv', 'csv', 'jsonl', 'jsonl', undefined]);
  });

  it('turns friendly durations into RBM seconds and leaves the rest for the schema', () => {
    expect(['60s', '60', '10m', '2h', '1d', '1.5s', 'soon'].map(normalizeTtl)).toEqual([
      '60s',
      '60s',
      '600s',
      '7200s',
      '86400s',
      '1.5s',
      'soon',
    ]);
  });
});
