// Read a CAR with @ipld/car, check every block against its CID, and export its first root
// with the JS UnixFS exporter into OUT (files, directories, symlinks recreated as links):
//   node read-car.mjs IN.car OUT
// Prints {"roots": [...], "blocks": N} as JSON.
import fs from 'node:fs'
import path from 'node:path'
import { CarBlockIterator } from '@ipld/car'
import { exporter } from 'ipfs-unixfs-exporter'
import { RecordingBlockstore } from './blocks.mjs'

const [carPath, outDir] = process.argv.slice(2)
const blocks = await CarBlockIterator.fromIterable(fs.createReadStream(carPath))
const roots = await blocks.getRoots()
const store = new RecordingBlockstore()
let count = 0
for await (const { cid, bytes } of blocks) {
  await store.put(cid, bytes) // verifies
  count++
}

async function write (entry, dest) {
  if (entry.type === 'directory') {
    fs.mkdirSync(dest)
    for await (const child of entry.entries()) {
      await write(await exporter(child.cid, store), path.join(dest, child.name))
    }
  } else if (entry.unixfs?.type === 'symlink') {
    fs.symlinkSync(Buffer.from(entry.unixfs.data), dest)
  } else {
    const fd = fs.openSync(dest, 'wx')
    for await (const chunk of entry.content()) fs.writeSync(fd, chunk)
    fs.closeSync(fd)
  }
}

// By string: the CAR decoder's CID class may come from another copy of multiformats.
await write(await exporter(roots[0].toString(), store), outDir)
console.log(JSON.stringify({ roots: roots.map(r => r.toString()), blocks: count }))
