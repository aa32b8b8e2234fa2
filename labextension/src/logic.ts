/**
 * The extension's decisions, as pure functions (no JupyterLab, no DOM): which reference or path a
 * right-click inserts, how a saved image is named, how a path joins the magic line. Unit tested with
 * `node --test` (test/logic.test.ts); src/index.ts wires them to JupyterLab.
 */

/** The MIME types the kernel side keeps as outputs (vision_magic/engine/outputs.py IMAGE_MIMES). */
export const IMAGE_MIMES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/svg+xml'];

/** The output metadata key the kernel side stamps on each image output it keeps. */
export const STAMP_KEY = 'vision_magic';

const MAGIC_LINE = /^(\s*)(%%?)ask_image\b/;

/** What a stamp says: the output's reference in the kernel that showed it, and that kernel's session. */
export interface IStamp {
  ref: string;
  kernel: string;
}

/** True when the first line of a cell's source starts with `%%ask_image` or `%ask_image`. */
export function isAskImageCell(source: string): boolean {
  return MAGIC_LINE.test(source.split('\n', 1)[0]);
}

/** A path as a token of the magic line: quoted when it holds spaces or quotes. */
export function quotePath(path: string): string {
  if (!/[\s"'\\]/.test(path)) {
    return path;
  }
  if (!path.includes('"') && !path.includes('\\')) {
    return `"${path}"`;
  }
  return `'${path.replace(/'/g, "'\"'\"'")}'`;
}

/**
 * The source with `paths` added to its magic line: at the end of a `%%ask_image` line, right after the
 * magic's name on a `%ask_image` line (whose end is the question), and before a `--` separator in both.
 */
export function addPathsToMagicLine(source: string, paths: string[]): string {
  const newline = source.indexOf('\n');
  const first = newline < 0 ? source : source.slice(0, newline);
  const rest = newline < 0 ? '' : source.slice(newline);
  const match = MAGIC_LINE.exec(first);
  if (!match || paths.length === 0) {
    return source;
  }
  const tokens = paths.map(quotePath).join(' ');
  const separator = /\s--(\s|$)/.exec(first);
  let line: string;
  if (separator) {
    line = `${first.slice(0, separator.index).trimEnd()} ${tokens}${first.slice(separator.index)}`;
  } else if (match[2] === '%%') {
    line = `${first.trimEnd()} ${tokens}`;
  } else {
    const end = match[0].length;
    const after = first.slice(end).trimStart();
    line = `${first.slice(0, end)} ${tokens}${after ? ' ' + after : ''}`;
  }
  return line + rest;
}

/** The source of an inserted cell: the magic line for `what`, then the default prompt. */
export function askCellSource(what: string, prompt = ''): string {
  return `%%ask_image ${what}\n${prompt}`;
}

/** True when an output's MIME bundle holds an image the kernel side keeps. */
export function isImageBundle(mimes: string[]): boolean {
  return mimes.some(m => IMAGE_MIMES.includes(m));
}

/**
 * K of `@N:K` for the output at `index` among a cell's outputs (each given by its MIME types): its
 * position among the outputs that hold an image, or null when it holds none.
 */
export function imagePosition(outputs: string[][], index: number): number | null {
  if (index < 0 || index >= outputs.length || !isImageBundle(outputs[index])) {
    return null;
  }
  return outputs.slice(0, index + 1).filter(isImageBundle).length;
}

/** The stamp in an output's metadata, when it is well formed. */
export function readStamp(metadata: unknown): IStamp | null {
  const stamp = (metadata as Record<string, unknown> | null | undefined)?.[STAMP_KEY] as
    | Record<string, unknown>
    | undefined;
  if (!stamp || typeof stamp.ref !== 'string' || typeof stamp.kernel !== 'string') {
    return null;
  }
  return /^@\d+:\d+$/.test(stamp.ref) ? { ref: stamp.ref, kernel: stamp.kernel } : null;
}

/** What a right-click on an output image inserts, and why. */
export type OutputChoice =
  | { kind: 'reference'; ref: string }
  | { kind: 'save'; reason: string }
  | { kind: 'refuse'; message: string };

/**
 * The reference to insert for an output image, when the running kernel can resolve it: the kernel that
 * showed it stamped it (`@N:K`, the same session as the running kernel's) and the cell still holds that
 * run. Otherwise the image's bytes must be handed over (saved next to the notebook).
 */
export function chooseOutputSource(
  executionCount: number | null,
  stamp: IStamp | null,
  runningKernel: string | null
): OutputChoice {
  if (executionCount === null) {
    return {
      kind: 'refuse',
      message:
        'This output has no execution count (its cell never ran here, or the counts were cleared): run the cell, then ask again.'
    };
  }
  if (!stamp) {
    return { kind: 'save', reason: 'the kernel did not keep this output (vision_magic was not loaded when it ran)' };
  }
  if (!runningKernel || stamp.kernel !== runningKernel) {
    return { kind: 'save', reason: 'an earlier kernel showed this output' };
  }
  if (!stamp.ref.startsWith(`@${executionCount}:`)) {
    return { kind: 'save', reason: 'the cell has been run again since' };
  }
  return { kind: 'reference', ref: stamp.ref };
}

/** File extension for an image MIME type. */
export function extensionFor(mime: string): string {
  const known: Record<string, string> = {
    'image/png': 'png',
    'image/jpeg': 'jpg',
    'image/gif': 'gif',
    'image/webp': 'webp',
    'image/svg+xml': 'svg',
    'image/bmp': 'bmp',
    'image/tiff': 'tiff'
  };
  return known[mime] ?? 'png';
}

/** A file name safe on every OS, keeping the extension: `My shot (1).PNG` -> `My shot (1).PNG`. */
export function safeFileName(name: string, fallback: string): string {
  const base = name.split(/[\\/]/).pop() ?? '';
  // eslint-disable-next-line no-control-regex
  const cleaned = base.replace(/[\u0000-\u001f<>:"|?*]/g, '_').replace(/^[.\s]+|[.\s]+$/g, '');
  return cleaned || fallback;
}

/** `pasted-20261126-061500.png` for a clipboard image (whose own name, `image.png`, says nothing). */
export function pastedName(when: Date, ext: string): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  const stamp =
    `${when.getFullYear()}${pad(when.getMonth() + 1)}${pad(when.getDate())}-` +
    `${pad(when.getHours())}${pad(when.getMinutes())}${pad(when.getSeconds())}`;
  return `pasted-${stamp}.${ext}`;
}

/** `name`, then `stem-2.ext`, `stem-3.ext`, ...: the names a file may be saved under, in order (endless). */
export function* nameCandidates(name: string): Generator<string> {
  yield name;
  const dot = name.lastIndexOf('.');
  const stem = dot > 0 ? name.slice(0, dot) : name;
  const ext = dot > 0 ? name.slice(dot) : '';
  for (let i = 2; ; i++) {
    yield `${stem}-${i}${ext}`;
  }
}

/** The first of {@link nameCandidates} that `taken` does not hold. */
export function uniqueName(name: string, taken: (candidate: string) => boolean): string {
  for (const candidate of nameCandidates(name)) {
    if (!taken(candidate)) {
      return candidate;
    }
  }
  throw new Error('unreachable: nameCandidates never ends');
}

/** 64-bit FNV-1a of bytes, as 16 hex digits: a content name for a saved output (no crypto.subtle needed). */
export function contentHash(bytes: Uint8Array): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x050c5d1f;
  for (let i = 0; i < bytes.length; i++) {
    h1 = Math.imul(h1 ^ bytes[i], 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ bytes[i] ^ (i & 0xff), 0x01000193) >>> 0;
  }
  return h1.toString(16).padStart(8, '0') + h2.toString(16).padStart(8, '0');
}

/** The directory of a server path (`a/b/nb.ipynb` -> `a/b`; `nb.ipynb` -> ``). */
export function dirname(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

/** Join server path parts, dropping empty ones. */
export function joinPath(...parts: string[]): string {
  return parts
    .flatMap(p => p.split('/'))
    .filter(p => p && p !== '.')
    .join('/');
}

/** `target` relative to directory `from` (both server paths): `relative('a/b', 'a/c/x.png')` -> `../c/x.png`. */
export function relative(from: string, target: string): string {
  const a = from.split('/').filter(Boolean);
  const b = target.split('/').filter(Boolean);
  let i = 0;
  while (i < a.length && i < b.length - 1 && a[i] === b[i]) {
    i++;
  }
  return [...Array(a.length - i).fill('..'), ...b.slice(i)].join('/');
}

/** What an image in rendered Markdown points at. */
export type MarkdownImage =
  | { kind: 'path'; path: string }
  | { kind: 'url'; url: string }
  | { kind: 'data'; mime: string; base64: string }
  | { kind: 'blob' }
  | { kind: 'unknown' };

/** The MIME type and base64 payload of a `data:` URL, or null. */
export function parseDataUrl(src: string): { mime: string; base64: string } | null {
  const match = /^data:([^;,]+)(;[^,]*)?,(.*)$/s.exec(src);
  if (!match) {
    return null;
  }
  const isBase64 = (match[2] ?? '').split(';').includes('base64');
  const payload = isBase64 ? match[3] : btoa(unescape(match[3]));
  return { mime: match[1], base64: payload };
}

/**
 * Where a rendered Markdown image comes from: a file on the Jupyter server (JupyterLab rewrote its
 * relative `src` to `<base>files/<path>`), given back relative to the notebook's directory; a web URL;
 * an embedded image (`data:`, a cell attachment).
 */
export function markdownImage(src: string, baseUrl: string, notebookPath: string): MarkdownImage {
  const data = parseDataUrl(src);
  if (data) {
    return { kind: 'data', ...data };
  }
  const base = baseUrl.endsWith('/') ? baseUrl : baseUrl + '/';
  const filesPrefix = base + 'files/';
  if (src.startsWith(filesPrefix)) {
    const encoded = src.slice(filesPrefix.length).split(/[?#]/)[0];
    const serverPath = encoded.split('/').map(decodeURIComponent).join('/');
    return { kind: 'path', path: relative(dirname(notebookPath), serverPath) };
  }
  if (/^https?:\/\//i.test(src) && !src.startsWith(base)) {
    return { kind: 'url', url: src };
  }
  if (src.startsWith('blob:')) {
    return { kind: 'blob' };
  }
  return { kind: 'unknown' };
}
