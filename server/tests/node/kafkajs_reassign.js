// kafkajs's reassignment admin calls against a Strata cluster (its own encoding of
// AlterPartitionReassignments and ListPartitionReassignments, sent to the broker Metadata names
// the controller). Moves one partition to the given replicas, then prints the moves the
// cluster lists. Usage: node kafkajs_reassign.js HOST:PORT TOPIC PARTITION 1,2,4
'use strict';
const { Kafka, logLevel } = require('kafkajs');

const [bootstrap, topic, partition, replicas] = process.argv.slice(2);
const kafka = new Kafka({ clientId: 'strata-kafkajs-reassign', brokers: bootstrap.split(','), logLevel: logLevel.ERROR });

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.alterPartitionReassignments({
      topics: [{ topic, partitionAssignment: [{ partition: Number(partition), replicas: replicas.split(',').map(Number) }] }],
      timeout: 10000,
    });
    console.log('kafkajs: reassignment accepted');
    const listed = await admin.listPartitionReassignments({ topics: [{ topic, partitions: [Number(partition)] }], timeout: 10000 });
    console.log(`kafkajs: listed ${JSON.stringify(listed.topics)}`);
  } finally {
    await admin.disconnect();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
