// An in-memory blockstore that keeps every block under the exact CID it was written with
// (so a CAR lists the CIDs the importer produced, v0 or v1), verifying blocks on the way in.
import { sha256 } from 'multiformats/hashes/sha2'

export class RecordingBlockstore {
  constructor () { this.blocks = new Map() }

  async put (cid, bytes) {
    if (cid.multihash.code === sha256.code) {
      const digest = await sha256.digest(bytes)
      if (Buffer.compare(digest.digest, cid.multihash.digest) !== 0) throw new Error(`block ${cid} does not match its CID`)
    }
    this.blocks.set(cid.toString(), { cid, bytes })
    return cid
  }

  * get (cid) {
    const entry = this.blocks.get(cid.toString())
    if (entry === undefined) throw new Error(`block ${cid} not found`)
    yield entry.bytes
  }

  has (cid) { return this.blocks.has(cid.toString()) }
}
