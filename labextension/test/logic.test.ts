// Unit tests of the extension's pure logic: `npm test` (run by tests/test_labextension.py).
import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import {
  addPathsToMagicLine,
  askCellSource,
  chooseOutputSource,
  contentHash,
  imagePosition,
  isAskImageCell,
  markdownImage,
  pastedName,
  quotePath,
  readStamp,
  relative,
  safeFileName,
  uniqueName
} from '../src/logic';

test('only a first line starting with the magic makes an ask cell', () => {
  assert.equal(isAskImageCell('%%ask_image fig\nWhat is this?'), true);
  assert.equal(isAskImageCell('%ask_image @1 what?'), true);
  assert.equal(isAskImageCell('  %%ask_image'), true);
  assert.equal(isAskImageCell('x = 1\n%%ask_image'), false);
  assert.equal(isAskImageCell('%%ask_images'), false);
  assert.equal(isAskImageCell('print("%%ask_image")'), false);
});

test('paths are quoted only when they need it', () => {
  assert.equal(quotePath('images/a.png'), 'images/a.png');
  assert.equal(quotePath('images/my shot.png'), '"images/my shot.png"');
  assert.equal(quotePath('images/say "hi".png'), `'images/say "hi".png'`);
});

test('a path joins the magic line where the magic reads sources', () => {
  assert.equal(addPathsToMagicLine('%%ask_image\nWhat?', ['a.png']), '%%ask_image a.png\nWhat?');
  assert.equal(
    addPathsToMagicLine('%%ask_image fig --detail low  \nWhat?', ['images/x y.png']),
    '%%ask_image fig --detail low "images/x y.png"\nWhat?'
  );
  assert.equal(addPathsToMagicLine('%%ask_image', ['a.png', 'b.png']), '%%ask_image a.png b.png');
  assert.equal(addPathsToMagicLine('%ask_image what is it?', ['a.png']), '%ask_image a.png what is it?');
  assert.equal(addPathsToMagicLine('%ask_image fig -- why?', ['a.png']), '%ask_image fig a.png -- why?');
  assert.equal(addPathsToMagicLine('x = 1', ['a.png']), 'x = 1');
});

test('the inserted cell has the magic line and a prompt line', () => {
  assert.equal(askCellSource('@3:1'), '%%ask_image @3:1\n');
  assert.equal(askCellSource('@3:1', 'Describe it.'), '%%ask_image @3:1\nDescribe it.');
});

test('K counts only the outputs that hold an image', () => {
  const outputs = [['text/plain'], ['image/png', 'text/plain'], ['text/html'], ['image/svg+xml']];
  assert.equal(imagePosition(outputs, 1), 1);
  assert.equal(imagePosition(outputs, 3), 2);
  assert.equal(imagePosition(outputs, 0), null);
  assert.equal(imagePosition(outputs, 9), null);
});

test('a stamp is read only when well formed', () => {
  assert.deepEqual(readStamp({ vision_magic: { ref: '@3:2', kernel: 'k1' } }), { ref: '@3:2', kernel: 'k1' });
  assert.equal(readStamp({ vision_magic: { ref: '@-1', kernel: 'k1' } }), null);
  assert.equal(readStamp({ vision_magic: { ref: '@3:2' } }), null);
  assert.equal(readStamp({}), null);
  assert.equal(readStamp(undefined), null);
});

test('a reference is inserted only when the running kernel showed the output', () => {
  const stamp = { ref: '@4:1', kernel: 'k1' };
  assert.deepEqual(chooseOutputSource(4, stamp, 'k1'), { kind: 'reference', ref: '@4:1' });
  assert.equal(chooseOutputSource(4, stamp, 'k2').kind, 'save'); // a new kernel: its @4 is another cell
  assert.equal(chooseOutputSource(4, stamp, null).kind, 'save'); // no kernel
  assert.equal(chooseOutputSource(4, null, 'k1').kind, 'save'); // vision_magic was not loaded
  assert.equal(chooseOutputSource(5, stamp, 'k1').kind, 'save'); // run again since
  const refused = chooseOutputSource(null, stamp, 'k1');
  assert.equal(refused.kind, 'refuse');
  assert.match((refused as { message: string }).message, /no execution count/);
});

test('saved names are safe, unique and never overwrite', () => {
  assert.equal(safeFileName('../../etc/passwd', 'x.png'), 'passwd');
  assert.equal(safeFileName('a:b?.png', 'x.png'), 'a_b_.png');
  assert.equal(safeFileName('...', 'x.png'), 'x.png');
  const taken = new Set(['shot.png', 'shot-2.png']);
  assert.equal(uniqueName('shot.png', n => taken.has(n)), 'shot-3.png');
  assert.equal(uniqueName('new.png', n => taken.has(n)), 'new.png');
  assert.equal(pastedName(new Date(2026, 10, 26, 6, 5, 9), 'png'), 'pasted-20261126-060509.png');
});

test('a content hash tells different bytes apart', () => {
  const a = contentHash(new Uint8Array([1, 2, 3]));
  assert.equal(a.length, 16);
  assert.equal(a, contentHash(new Uint8Array([1, 2, 3])));
  assert.notEqual(a, contentHash(new Uint8Array([1, 2, 4])));
  assert.notEqual(contentHash(new Uint8Array([0, 1])), contentHash(new Uint8Array([1, 0])));
});

test('relative paths between server paths', () => {
  assert.equal(relative('', 'images/a.png'), 'images/a.png');
  assert.equal(relative('work', 'work/images/a.png'), 'images/a.png');
  assert.equal(relative('work/nb', 'work/pics/a.png'), '../pics/a.png');
  assert.equal(relative('a/b', 'c.png'), '../../c.png');
});

test('a Markdown image is given as a path, a URL or its bytes', () => {
  const base = 'http://127.0.0.1:8888/';
  assert.deepEqual(markdownImage(base + 'files/work/pics/my%20cat.png?_xsrf=1', base, 'work/nb.ipynb'), {
    kind: 'path',
    path: 'pics/my cat.png'
  });
  assert.deepEqual(markdownImage('https://example.org/c.png', base, 'nb.ipynb'), {
    kind: 'url',
    url: 'https://example.org/c.png'
  });
  assert.deepEqual(markdownImage('data:image/png;base64,iVBO', base, 'nb.ipynb'), {
    kind: 'data',
    mime: 'image/png',
    base64: 'iVBO'
  });
  assert.deepEqual(markdownImage('blob:http://x/1', base, 'nb.ipynb'), { kind: 'blob' });
  assert.deepEqual(markdownImage(base + 'lab/tree/x.png', base, 'nb.ipynb'), { kind: 'unknown' });
});
