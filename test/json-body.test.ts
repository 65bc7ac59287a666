/**
 * The API's JSON body parser: a large `{ "key": [ items ] }` body parsed item
 * by item gives exactly what JSON.parse gives, taking turns with the rest of
 * the process; any other shape falls back to the whole parse, and bad JSON
 * gets Fastify's own errors. A real Fastify app, no Redis.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseListBody, registerJsonBodyParser } from '../src/api/json-body.ts';

describe('parseListBody', () => {
  const same = [
    '{"messages":[]}',
    ' \n{ "messages" :\t[ ] }\r\n',
    '{"messages":[1]}',
    '{"messages":[1,"a,]\\"}{",{"x":[1,{"y":"]"}]},null,true,[[],[{}]],-2.5e3]}',
    '{"events":[{"a":"\\\\"},{"b":"\\u005d,"},"\\\\\\""]}',
    '{ "messages" : [ {"to":"+1"} ,\n {"to":"+2"} ] }',
    '{"m\\u0065ssages":[{"k":"é😀"}]}',
    '{"constructor":[1]}',
  ];
  it.each(same)('%s: what JSON.parse gives', async (text) => {
    expect(await parseListBody(text, JSON.parse)).toEqual(JSON.parse(text));
  });

  const other = [
    '[1,2]',
    '{"a":1}',
    '{"messages":[1],"x":1}',
    '{"x":1,"messages":[1]}',
    '{"messages":[1],"messages":[2]}',
    '{"messages":[1,,2]}',
    '{"messages":[1,]}',
    '{"messages":[,]}',
    '{"messages":[1]]}',
    '{"messages":[1]} x',
    '{"messages":["abc]}',
    '{"__proto__":[{"agentId":"x"}]}',
    '{"bad\\q":[1]}',
  ];
  it.each(other)('%s: not for the item parse (the whole parse decides)', async (text) => {
    expect(await parseListBody(text, JSON.parse)).toBeUndefined();
  });

  it.each(['{"messages":[1,{"a":}]}', '{"messages":[{"a":[1}]]}'])('%s: throws what the item parse throws', async (text) => {
    await expect(parseListBody(text, JSON.parse)).rejects.toThrow(SyntaxError);
  });

  it('takes turns with the rest of the process on a 10 MB body', async () => {
    const text = JSON.stringify({
      messages: Array.from({ length: 10_000 }, (_, i) => ({ to: `+1555${i}`, contentMessage: { text: 'x'.repeat(980) } })),
    });
    let turns = 0;
    let parsing = true;
    const tick = () => {
      turns++;
      if (parsing) setImmediate(tick);
    };
    setImmediate(tick);
    const parsed = await parseListBody(text, JSON.parse);
    parsing = false;
    expect(parsed).toEqual(JSON.parse(text));
    expect(turns).toBeGreaterThan(5);
  });
});

describe('the parser in a Fastify app', () => {
  let app: FastifyInstance;
  const post = (payload: string) => app.inject({ method: 'POST', url: '/echo', headers: { 'content-type': 'application/json' }, payload });
  const large = (items: string[]) => `{"messages":[${items.join(',')}]}`;
  const item = (i: number) => JSON.stringify({ to: `+1555${i}`, contentMessage: { text: 'x'.repeat(200) } });

  beforeAll(async () => {
    app = Fastify({ bodyLimit: 32 * 1024 * 1024 });
    registerJsonBodyParser(app);
    app.post('/echo', async (request) => ({ json: JSON.stringify(request.body) }));
    await app.ready();
  });
  afterAll(() => app.close());

  it('gives a large batch exactly as JSON.parse does, and a small body too', async () => {
    const body = large(Array.from({ length: 6000 }, (_, i) => item(i)));
    expect(body.length).toBeGreaterThan(1024 * 1024);
    expect((await post(body)).json().json).toBe(JSON.stringify(JSON.parse(body)));
    expect((await post('{"to":"+15550001"}')).json().json).toBe('{"to":"+15550001"}');
    const twoKeys = `{"extra":1,${large(Array.from({ length: 6000 }, (_, i) => item(i))).slice(1)}`;
    expect((await post(twoKeys)).json().json).toBe(JSON.stringify(JSON.parse(twoKeys)));
  });

  it("refuses what Fastify's parser refuses, with its codes", async () => {
    const items = Array.from({ length: 6000 }, (_, i) => item(i));
    const poisoned = large([...items, '{"__proto__":{"agentId":"agent-b"}}']);
    const constructed = large([...items, '{"constructor":{"prototype":{"x":1}}}']);
    const broken = large([...items, '{"to":']);
    for (const body of [poisoned, constructed, broken, `${large(items)} x`]) {
      const res = await post(body);
      expect(res.statusCode).toBe(400);
      expect(res.json().code).toBe('FST_ERR_CTP_INVALID_JSON_BODY');
    }
    expect((await post('')).json().code).toBe('FST_ERR_CTP_EMPTY_JSON_BODY');
  });
});
