// kafkajs (pure JavaScript, Node's TLS) against Strata's SSL listener with mutual TLS: produce
// with acks=all and consume from the start; then a client without a certificate is refused.
// Usage: node kafkajs_tls.js CERT_DIR HOST:PORT
'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { Kafka, logLevel } = require('kafkajs');

const [dir, bootstrap] = process.argv.slice(2);
const read = (name) => fs.readFileSync(path.join(dir, name), 'utf8');
const ssl = { ca: [read('ca.pem')], cert: read('client.crt'), key: read('client.key') };
const N = 100;

async function main() {
  const kafka = new Kafka({ clientId: 'js-tls', brokers: [bootstrap], ssl, logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  await producer.connect();
  const messages = Array.from({ length: N }, (_, i) => ({ value: `js-tls-${i}` }));
  await producer.send({ topic: 'js-tls', acks: -1, messages });
  await producer.disconnect();
  console.log(`produced ${N}`);

  const consumer = kafka.consumer({ groupId: 'js-tls-group' });
  await consumer.connect();
  await consumer.subscribe({ topic: 'js-tls', fromBeginning: true });
  const got = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed only ${got.length}`)), 30000);
    consumer.run({
      eachMessage: async ({ message }) => {
        got.push(message.value.toString());
        if (got.length === N) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  assert.deepStrictEqual(got, messages.map((m) => m.value));
  console.log(`consumed ${N}`);

  const anonymous = new Kafka({
    clientId: 'js-no-cert',
    brokers: [bootstrap],
    ssl: { ca: [read('ca.pem')] },
    retry: { retries: 0 },
    connectionTimeout: 3000,
    logLevel: logLevel.NOTHING,
  });
  const admin = anonymous.admin();
  let refused = false;
  try {
    await admin.connect();
    await admin.listTopics();
  } catch (e) {
    refused = true;
  }
  await admin.disconnect().catch(() => {});
  assert(refused, 'a client without a certificate was served');
  console.log('refused without a certificate');
  console.log('kafkajs tls: ok');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
