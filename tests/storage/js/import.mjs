// Reference import with the JS UnixFS importer, mirroring `ipfs add [-r]`:
//   node import.mjs PATH [--cid-version 0|1] [--raw-leaves true|false] [--hidden]
//                        [--shard-split-threshold N] [--car OUT.car]
// Prints {"cid": ROOT, "blocks": N, "entries": {relative path: CID}} as JSON (the root is ""). A directory is walked here (dot-entries skipped
// unless --hidden, empty directories kept, symlinks stored as symlinks, never followed).
import fs from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { parseArgs } from 'node:util'
import { CarWriter } from '@ipld/car'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { RecordingBlockstore } from './blocks.mjs'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'cid-version': { type: 'string', default: '0' },
    'raw-leaves': { type: 'string' },
    hidden: { type: 'boolean', default: false },
    'shard-split-threshold': { type: 'string', default: '262144' },
    car: { type: 'string' }
  }
})
const target = positionals[0]
const cidVersion = Number(values['cid-version'])
const rawLeaves = values['raw-leaves'] === undefined ? cidVersion === 1 : values['raw-leaves'] === 'true'

function * walk (abs, rel) {
  const st = fs.lstatSync(abs)
  if (st.isSymbolicLink()) {
    yield { path: rel, link: fs.readlinkSync(abs) }
  } else if (st.isDirectory()) {
    const names = fs.readdirSync(abs).filter(n => values.hidden || !n.startsWith('.'))
    if (names.length === 0) yield { path: rel }
    for (const name of names) yield * walk(path.join(abs, name), `${rel}/${name}`)
  } else if (st.isFile()) {
    yield { path: rel, content: fs.createReadStream(abs, { highWaterMark: 1 << 20 }) }
  }
}

const name = path.basename(path.resolve(target))
const store = new RecordingBlockstore()
let root
const entries = {}
for await (const entry of importer(walk(target, name), store, {
  cidVersion,
  rawLeaves,
  chunker: fixedSize({ chunkSize: 262144 }),
  layout: balanced({ maxChildrenPerNode: 174 }),
  reduceSingleLeafToSelf: true,
  leafType: 'file',
  shardSplitThresholdBytes: Number(values['shard-split-threshold']),
  shardSplitStrategy: 'links-bytes',
  wrapWithDirectory: false
})) {
  if (entry.path === name) root = entry.cid
  entries[entry.path === name ? '' : entry.path.slice(name.length + 1)] = entry.cid.toString()
}
if (root === undefined) throw new Error('the importer returned no root')

if (values.car !== undefined) {
  const { writer, out } = CarWriter.create([root])
  const done = pipeline(Readable.from(out), fs.createWriteStream(values.car))
  for (const { cid, bytes } of store.blocks.values()) await writer.put({ cid, bytes })
  await writer.close()
  await done
}
console.log(JSON.stringify({ cid: root.toString(), blocks: store.blocks.size, entries }))
