// An independent client against Strata: kafkajs (pure JavaScript, its own protocol
// implementation). Admin (create, list, fetch offsets, describe configs, delete), produce with
// keys and headers (acks=all), consume from the start and from an offset, and a consumer group
// that commits and whose next member resumes exactly after the commit. Prints one line per step;
// exits non-zero on the first difference. Usage: node kafkajs_client.js HOST:PORT
'use strict';
const assert = require('assert');
const { Kafka, logLevel, ConfigResourceTypes } = require('kafkajs');

const BOOTSTRAP = process.argv[2];
const TOPIC = 'js-topic';
const N = 100;
const kafka = new Kafka({ clientId: 'strata-kafkajs', brokers: [BOOTSTRAP], logLevel: logLevel.ERROR });

const record = (i) => ({ key: `k${i % 5}`, value: `value-${i}`, headers: { h: `${i}` } });

async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function adminSteps() {
  const admin = kafka.admin();
  await admin.connect();
  try {
    assert.strictEqual(await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 2, replicationFactor: 1 }], waitForLeaders: true }), true);
    await admin.createTopics({ topics: [{ topic: 'js-doomed', numPartitions: 1 }], waitForLeaders: true });
    const topics = await admin.listTopics();
    assert.ok(topics.includes(TOPIC) && topics.includes('js-doomed'), topics);
    const configs = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: TOPIC }],
      includeSynonyms: false,
    });
    const names = configs.resources[0].configEntries.map((c) => c.configName);
    assert.ok(names.includes('retention.ms'), names);
    await admin.deleteTopics({ topics: ['js-doomed'] });
    console.log('kafkajs: admin ok');
  } finally {
    await admin.disconnect();
  }
}

async function produce() {
  const producer = kafka.producer();
  await producer.connect();
  const sent = new Map();
  try {
    for (let i = 0; i < N; i++) {
      const [md] = await producer.send({ topic: TOPIC, acks: -1, messages: [record(i)] });
      assert.strictEqual(md.errorCode, 0);
      sent.set(`${md.partition}:${md.baseOffset}`, i);
    }
  } finally {
    await producer.disconnect();
  }
  assert.strictEqual(sent.size, N);
  console.log('kafkajs: produced', N);
  return sent;
}

// Runs a consumer until `stop(got)` says so; returns what it read, by "partition:offset".
async function consume(groupId, setup, stop, options = {}) {
  const consumer = kafka.consumer({ groupId, ...options });
  await consumer.connect();
  const got = new Map();
  try {
    await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
    let done;
    const finished = new Promise((resolve) => { done = resolve; });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (stop(got)) return;
        got.set(`${partition}:${message.offset}`, message);
        if (stop(got)) done();
      },
    });
    if (setup) setup(consumer);
    await withTimeout(finished, 30000, `consumer ${groupId}`);
    return { consumer, got };
  } catch (e) {
    await consumer.disconnect();
    throw e;
  }
}

async function fromStartAndOffset(sent) {
  const { consumer, got } = await consume('js-reader', null, (g) => g.size >= N);
  await consumer.disconnect();
  assert.deepStrictEqual(new Set(got.keys()), new Set(sent.keys()), 'every record from the start');
  for (const [pos, m] of got) {
    const want = record(sent.get(pos));
    assert.strictEqual(m.key.toString(), want.key, pos);
    assert.strictEqual(m.value.toString(), want.value, pos);
    assert.strictEqual(m.headers.h.toString(), want.headers.h, pos);
  }
  console.log('kafkajs: consumed from the start', got.size);

  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(TOPIC);
  await admin.disconnect();
  const p0 = ends.find((o) => o.partition === 0);
  assert.strictEqual(Number(p0.high), [...sent.keys()].filter((k) => k.startsWith('0:')).length);

  const seeker = kafka.consumer({ groupId: 'js-seeker' });
  await seeker.connect();
  try {
    // A new group starting at the end: nothing arrives until the seek.
    await seeker.subscribe({ topic: TOPIC, fromBeginning: false });
    let first;
    const got5 = new Promise((resolve) => { first = resolve; });
    await seeker.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (partition === 0) first(message.offset);
      },
    });
    seeker.seek({ topic: TOPIC, partition: 0, offset: '5' });
    const offset = await withTimeout(got5, 30000, 'seek to offset 5');
    assert.strictEqual(offset, '5');
  } finally {
    await seeker.disconnect();
  }
  console.log('kafkajs: consumed from offset 5');
}

async function group(sent) {
  const { consumer, got } = await consume('js-group', null, (g) => g.size >= 60, { maxBytesPerPartition: 200 });
  // Commit the contiguous prefix of each partition that was read.
  const prefix = {};
  for (const p of [0, 1]) {
    let n = 0;
    while (got.has(`${p}:${n}`)) n++;
    prefix[p] = n;
  }
  await consumer.commitOffsets([0, 1].map((p) => ({ topic: TOPIC, partition: p, offset: `${prefix[p]}` })));
  await consumer.disconnect();
  const consumed = new Set([...got.keys()].filter((k) => {
    const [p, o] = k.split(':').map(Number);
    return o < prefix[p];
  }));
  assert.ok(consumed.size > 0 && consumed.size < N, `committed part of the topic: ${consumed.size}`);

  const admin = kafka.admin();
  await admin.connect();
  const committed = await admin.fetchOffsets({ groupId: 'js-group', topics: [TOPIC] });
  await admin.disconnect();
  for (const p of committed[0].partitions) {
    assert.strictEqual(Number(p.offset), prefix[p.partition], `committed offset of ${p.partition}`);
  }

  const second = await consume('js-group', null, (g) => g.size >= N - consumed.size);
  await second.consumer.disconnect();
  const rest = new Set(second.got.keys());
  for (const k of rest) assert.ok(!consumed.has(k), `re-delivered committed record ${k}`);
  assert.deepStrictEqual(new Set([...rest, ...consumed]), new Set(sent.keys()), 'every record consumed once');
  console.log('kafkajs: group resumed after its commit', consumed.size, rest.size);
}

(async () => {
  await adminSteps();
  const sent = await produce();
  await fromStartAndOffset(sent);
  await group(sent);
  console.log('kafkajs: ok');
  process.exit(0);
})().catch((e) => {
  console.error('kafkajs: FAILED', e);
  process.exit(1);
});
