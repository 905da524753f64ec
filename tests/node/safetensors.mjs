// A safetensors file written by the node tests and benches: {name: shape}
// in order, F32 values value(i, n) for element i of a tensor of n elements,
// the header padded with spaces to 8 bytes.
import { writeFileSync } from 'node:fs';

export function writeSafetensors(path, tensors, value) {
  const header = {};
  const parts = [];
  let off = 0;
  for (const [name, shape] of Object.entries(tensors)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const buf = Buffer.alloc(n * 4);
    for (let i = 0; i < n; i++) buf.writeFloatLE(value(i, n), i * 4);
    header[name] = { dtype: 'F32', shape, data_offsets: [off, off + buf.length] };
    parts.push(buf);
    off += buf.length;
  }
  let h = Buffer.from(JSON.stringify(header));
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(path, Buffer.concat([len, h, ...parts]));
}
