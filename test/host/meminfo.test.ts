import assert from 'node:assert/strict';
import { readMeminfo } from '../../lib/memory';

describe('/proc/meminfo', () => {
  it('reads kB figures as bytes and counts as they are', () => {
    const m = readMeminfo('MemTotal:       24576000 kB\nMemAvailable:    1000 kB\nHugePages_Free:        7\nDirectMap4k:  12 kB\n');
    assert.equal(m.get('MemTotal'), 24576000 * 1024);
    assert.equal(m.get('MemAvailable'), 1024000);
    assert.equal(m.get('HugePages_Free'), 7);
  });
  it('reads this machine', () => {
    assert.ok((readMeminfo().get('MemAvailable') ?? 0) > 0);
  });
});
