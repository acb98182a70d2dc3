// Transactions with kafkajs (its own protocol implementation): a committed, an aborted and a
// second committed transaction, read back by a read_committed consumer (committed only) and a
// read_uncommitted one (all); a consume-transform-produce round with sendOffsets; a second
// producer with the same transactional id fencing the first. Prints one line per step; exits
// non-zero on the first difference. Usage: node kafkajs_transactions.js HOST:PORT
'use strict';
const assert = require('assert');
const { Kafka, logLevel } = require('kafkajs');

const BOOTSTRAP = process.argv[2];
const kafka = new Kafka({ clientId: 'strata-kafkajs-txn', brokers: [BOOTSTRAP], logLevel: logLevel.NOTHING });

function txnProducer(id) {
  return kafka.producer({ transactionalId: id, maxInFlightRequests: 1, idempotent: true });
}

// Reads `topic` from the start with a fresh group until `n` values arrived and 1.5 s passed
// with nothing new (so a value too many is seen).
async function readAll(topic, readUncommitted, n) {
  const consumer = kafka.consumer({ groupId: `js-reader-${Date.now()}-${Math.random()}`, readUncommitted });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got = [];
  let last = Date.now();
  await consumer.run({
    eachMessage: async ({ message }) => {
      got.push(message.value.toString());
      last = Date.now();
    },
  });
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline && (got.length < n || Date.now() - last < 1500)) {
    await new Promise((r) => setTimeout(r, 100));
  }
  await consumer.disconnect();
  return got;
}

async function commitAndAbort() {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'js-txn', numPartitions: 1 }, { topic: 'js-in', numPartitions: 1 }, { topic: 'js-out', numPartitions: 1 }], waitForLeaders: true });
  await admin.disconnect();
  const p = txnProducer('js-txn-app');
  await p.connect();
  const send = async (prefix, n, commit) => {
    const t = await p.transaction();
    await t.send({ topic: 'js-txn', messages: [...Array(n).keys()].map((i) => ({ value: `${prefix}-${i}` })) });
    if (commit) await t.commit();
    else await t.abort();
  };
  await send('c1', 10, true);
  await send('a1', 10, false);
  await send('c2', 5, true);
  await p.disconnect();
  const expected = [...[...Array(10).keys()].map((i) => `c1-${i}`), ...[...Array(5).keys()].map((i) => `c2-${i}`)];
  const committed = await readAll('js-txn', false, expected.length);
  assert.deepStrictEqual(committed, expected);
  const everything = await readAll('js-txn', true, 25);
  assert.strictEqual(everything.length, 25, everything);
  console.log('kafkajs: read_committed sees commits only');
}

async function consumeTransformProduce() {
  const plain = kafka.producer();
  await plain.connect();
  await plain.send({ topic: 'js-in', messages: [...Array(20).keys()].map((i) => ({ value: `in-${i}` })) });
  await plain.disconnect();
  const consumer = kafka.consumer({ groupId: 'js-ctp', readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topic: 'js-in', fromBeginning: true });
  const p = txnProducer('js-ctp-app');
  await p.connect();
  let seen = 0;
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch, resolveOffset }) => {
      const t = await p.transaction();
      await t.send({ topic: 'js-out', messages: batch.messages.map((m) => ({ value: m.value.toString().replace('in-', 'out-') })) });
      const next = (BigInt(batch.messages[batch.messages.length - 1].offset) + 1n).toString();
      await t.sendOffsets({ consumerGroupId: 'js-ctp', topics: [{ topic: 'js-in', partitions: [{ partition: batch.partition, offset: next }] }] });
      await t.commit();
      for (const m of batch.messages) resolveOffset(m.offset);
      seen += batch.messages.length;
    },
  });
  const deadline = Date.now() + 30000;
  while (seen < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  await consumer.disconnect();
  await p.disconnect();
  assert.strictEqual(seen, 20);
  const admin = kafka.admin();
  await admin.connect();
  let offset;
  for (let i = 0; i < 50; i++) {
    const [t] = await admin.fetchOffsets({ groupId: 'js-ctp', topics: ['js-in'] });
    offset = t.partitions[0].offset;
    if (offset === '20') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await admin.disconnect();
  assert.strictEqual(offset, '20');
  const out = await readAll('js-out', false, 20);
  assert.deepStrictEqual(out, [...Array(20).keys()].map((i) => `out-${i}`));
  console.log('kafkajs: consume-transform-produce exactly once');
}

async function fencing() {
  const zombie = txnProducer('js-fenced');
  await zombie.connect();
  const zt = await zombie.transaction();
  await zt.send({ topic: 'js-txn', messages: [{ value: 'zombie' }] });
  const fresh = txnProducer('js-fenced');
  await fresh.connect();
  const ft = await fresh.transaction();
  await ft.send({ topic: 'js-txn', messages: [{ value: 'fresh' }] });
  await ft.commit();
  await assert.rejects(zt.commit(), (e) => {
    console.log(`kafkajs: zombie fenced (${e.type || e.name})`);
    return true;
  });
  await zombie.disconnect();
  await fresh.disconnect();
  const all = await readAll('js-txn', false, 16);
  assert.ok(all.includes('fresh') && !all.includes('zombie'), all);
}

(async () => {
  await commitAndAbort();
  await consumeTransformProduce();
  await fencing();
  console.log('kafkajs: transactions ok');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
