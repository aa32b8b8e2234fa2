/**
 * vision_magic in JupyterLab: "Ask about this image" on any image in a notebook, and paste or drop of
 * images into an `%%ask_image` cell. The decisions are in ./logic.ts; this file talks to JupyterLab.
 *
 * A right-click on an output inserts `%%ask_image @N:K` when the running kernel showed that output (the
 * kernel side stamps each image output with its reference and its kernel session); otherwise (a notebook
 * saved by an earlier kernel, an output shown before `%load_ext vision_magic`, a widget's image) the
 * image's bytes are saved next to the notebook and the cell names that file, so the inserted cell runs in
 * any kernel, today or next week. See docs/jupyterlab.md.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { Cell, CodeCell } from '@jupyterlab/cells';
import { PageConfig } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Contents } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import {
  IMAGE_MIMES,
  addPathsToMagicLine,
  askCellSource,
  chooseOutputSource,
  contentHash,
  dirname,
  extensionFor,
  isAskImageCell,
  isImageBundle,
  joinPath,
  markdownImage,
  nameCandidates,
  pastedName,
  quotePath,
  readStamp,
  relative,
  safeFileName
} from './logic';

const PLUGIN_ID = 'vision-magic:plugin';
const ASK_IMAGE = 'vision-magic:ask-about-image';
const ASK_LAST = 'vision-magic:ask-about-last-image';
const CONTENTS_MIME = 'application/x-jupyter-icontents';
const IMAGE_FILE = /\.(png|jpe?g|gif|webp|bmp|tiff?|svg)$/i;
const CHUNK = 4 * 1024 * 1024; // bytes per request when saving a large image

interface ISettings {
  imagesFolder: string;
  defaultPrompt: string;
}

/** The session of the kernel process each notebook talks to, from the headers of its messages. */
const kernelSessions = new WeakMap<NotebookPanel, string>();

function bytesToBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function base64ToBytes(base64: string): Uint8Array {
  const binary = atob(base64.replace(/\s+/g, ''));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) {
    bytes[i] = binary.charCodeAt(i);
  }
  return bytes;
}

/** What `promise` gives, or undefined after `ms` milliseconds (a busy or gone kernel never blocks a menu). */
function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return Promise.race([promise, new Promise<undefined>(resolve => setTimeout(() => resolve(undefined), ms))]);
}

function reason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] || 'the server refused';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Ask a vision model about any image in a notebook; paste or drop screenshots into %%ask_image cells.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ISettingRegistry, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null
  ) => {
    const settings: ISettings = { imagesFolder: 'images', defaultPrompt: '' };
    if (settingRegistry) {
      void settingRegistry
        .load(PLUGIN_ID)
        .then(loaded => {
          const read = () => {
            settings.imagesFolder = (loaded.get('imagesFolder').composite as string) || 'images';
            settings.defaultPrompt = (loaded.get('defaultPrompt').composite as string) ?? '';
          };
          read();
          loaded.changed.connect(read);
        })
        .catch(error => console.warn('vision-magic: settings not loaded:', error));
    }
    const contents = app.serviceManager.contents;

    // ---- where things are -------------------------------------------------------------------------
    const panelOf = (node: Node): NotebookPanel | null =>
      tracker.find(panel => panel.node.contains(node)) ?? null;
    const cellOf = (panel: NotebookPanel, node: Node): Cell | null =>
      panel.content.widgets.find(cell => cell.node.contains(node)) ?? null;

    async function runningKernel(panel: NotebookPanel): Promise<string | null> {
      const kernel = panel.sessionContext.session?.kernel;
      if (!kernel) {
        return null;
      }
      const seen = kernelSessions.get(panel);
      if (seen) {
        return seen;
      }
      try {
        const reply = await within(kernel.requestKernelInfo(), 2000);
        const session = reply?.header.session ?? null;
        if (session) {
          kernelSessions.set(panel, session);
        }
        return session;
      } catch {
        return null;
      }
    }

    /**
     * Make sure the running kernel has `%%ask_image`, so the inserted cell runs at once: when it does not
     * (a notebook reopened with a new kernel), vision_magic is loaded with a silent execution; the
     * `%load_ext vision_magic` cell the notebook holds (or the one inserted) is the record of it.
     */
    async function ensureMagic(panel: NotebookPanel): Promise<void> {
      const kernel = panel.sessionContext.session?.kernel;
      if (!kernel) {
        return;
      }
      try {
        const reply = await within(
          kernel.requestExecute({
            code: '',
            silent: true,
            store_history: false,
            user_expressions: { vm: "'ask_image' in get_ipython().magics_manager.magics['cell']" }
          }).done,
          5000
        );
        const found = (reply?.content as { user_expressions?: Record<string, any> } | undefined)?.user_expressions?.vm;
        if (found?.status === 'ok' && found.data?.['text/plain'] === 'False') {
          await within(
            kernel.requestExecute({ code: '%load_ext vision_magic', silent: true, store_history: false }).done,
            5000
          );
        }
      } catch (error) {
        console.warn('vision-magic: could not check the kernel for %%ask_image:', error);
      }
    }

    // ---- saving files next to the notebook ------------------------------------------------------------
    async function exists(path: string): Promise<boolean> {
      try {
        await contents.get(path, { content: false });
        return true;
      } catch {
        return false;
      }
    }

    async function ensureFolder(folder: string): Promise<void> {
      let path = '';
      for (const part of folder.split('/').filter(Boolean)) {
        path = joinPath(path, part);
        if (!(await exists(path))) {
          await contents.save(path, { type: 'directory' } as Partial<Contents.IModel>);
        }
      }
    }

    /**
     * Save bytes under the images folder as `name`, or `stem-2.ext`, ... when taken (never overwriting);
     * `reuse`: a content-named file already there holds these bytes, so name it instead. Returns the path
     * relative to the notebook.
     */
    async function saveImage(panel: NotebookPanel, bytes: Uint8Array, name: string, reuse: boolean): Promise<string> {
      const notebookDir = dirname(panel.context.path);
      const folder = joinPath(notebookDir, settings.imagesFolder);
      await ensureFolder(folder);
      for (const candidate of nameCandidates(name)) {
        const path = joinPath(folder, candidate);
        if (!(await exists(path))) {
          await writeFile(path, bytes);
          return relative(notebookDir, path);
        }
        if (reuse) {
          return relative(notebookDir, path);
        }
      }
      throw new Error(`no free name for ${name}`); // nameCandidates never ends
    }

    async function writeFile(path: string, bytes: Uint8Array): Promise<void> {
      if (bytes.length <= CHUNK) {
        await contents.save(path, { type: 'file', format: 'base64', content: bytesToBase64(bytes) });
        return;
      }
      for (let start = 0, n = 1; start < bytes.length; start += CHUNK, n++) {
        const last = start + CHUNK >= bytes.length;
        await contents.save(path, {
          type: 'file',
          format: 'base64',
          content: bytesToBase64(bytes.subarray(start, start + CHUNK)),
          chunk: last ? -1 : n
        } as Partial<Contents.IModel>);
      }
    }

    /** Save an output's or an embedded image's bytes under a name made from its content. */
    async function saveContent(panel: NotebookPanel, bytes: Uint8Array, mime: string): Promise<string> {
      return saveImage(panel, bytes, `output-${contentHash(bytes)}.${extensionFor(mime)}`, true);
    }

    // ---- inserting the cell ---------------------------------------------------------------------------
    function insertAskCell(panel: NotebookPanel, below: Cell, what: string): void {
      const notebook = panel.content;
      const model = notebook.model;
      if (!model) {
        return;
      }
      const index = notebook.widgets.indexOf(below);
      // the record: a notebook that never loads vision_magic gets the line that does, above the question
      const loaded = notebook.widgets.some(
        cell =>
          cell.model.type === 'code' &&
          /(load_ext|import)\s+vision_magic|from\s+vision_magic\s+import/.test(cell.model.sharedModel.getSource())
      );
      let at = index + 1;
      model.sharedModel.transact(() => {
        if (!loaded) {
          model.sharedModel.insertCell(at++, {
            cell_type: 'code',
            source: '%load_ext vision_magic',
            metadata: { trusted: true }
          });
        }
        model.sharedModel.insertCell(at, {
          cell_type: 'code',
          source: askCellSource(what, settings.defaultPrompt),
          metadata: { trusted: true }
        });
      });
      notebook.deselectAll();
      notebook.activeCellIndex = at;
      const inserted = notebook.activeCell;
      // the cursor on the prompt line, once the cell's editor exists and the menu has given focus back
      void (inserted?.ready ?? Promise.resolve()).then(() => {
        requestAnimationFrame(() => {
          if (notebook.activeCell !== inserted || !inserted?.editor) {
            return;
          }
          notebook.activate();
          notebook.mode = 'edit';
          inserted.editor.setCursorPosition({ line: 1, column: settings.defaultPrompt.length });
          inserted.editor.focus();
        });
      });
    }

    // ---- what a clicked image is ----------------------------------------------------------------------
    /** The output index of `node` in a code cell's own output area, or -1 (not an output, a widget's). */
    function outputIndex(cell: CodeCell, node: Node): number {
      const area = cell.outputArea.node;
      let child: Node | null = node;
      while (child && child.parentNode !== area) {
        child = child.parentNode;
      }
      return child ? Array.prototype.indexOf.call(area.children, child) : -1;
    }

    /** What the magic line should name for the output at `index`, or null (refused: notified). */
    async function sourceForOutput(panel: NotebookPanel, cell: CodeCell, index: number): Promise<string | null> {
      const output = cell.outputArea.model.get(index);
      const mime = IMAGE_MIMES.find(m => output.data[m] !== undefined);
      if (!mime) {
        return null;
      }
      const choice = chooseOutputSource(
        cell.model.executionCount ?? null,
        readStamp(output.metadata),
        await runningKernel(panel)
      );
      if (choice.kind === 'refuse') {
        Notification.warning(choice.message, { autoClose: 8000 });
        return null;
      }
      if (choice.kind === 'reference') {
        return choice.ref;
      }
      const data = output.data[mime] as string | string[];
      const text = Array.isArray(data) ? data.join('') : data;
      const bytes = mime === 'image/svg+xml' ? new TextEncoder().encode(text) : base64ToBytes(text);
      return quotePath(await saveContent(panel, bytes, mime));
    }

    /** What the magic line should name for an image shown by its `src` (Markdown, HTML, widgets). */
    async function sourceForSrc(panel: NotebookPanel, img: HTMLImageElement): Promise<string | null> {
      const base = new URL(PageConfig.getBaseUrl(), window.location.href).href;
      const found = markdownImage(img.src, base, panel.context.path);
      switch (found.kind) {
        case 'path':
          return quotePath(found.path);
        case 'url':
          return quotePath(found.url);
        case 'data':
          return quotePath(await saveContent(panel, base64ToBytes(found.base64), found.mime));
        case 'blob': {
          // an image widget's bytes live in the page: fetch them from the blob URL and hand them over
          const response = await fetch(img.src);
          const bytes = new Uint8Array(await response.arrayBuffer());
          return quotePath(await saveContent(panel, bytes, response.headers.get('content-type') || 'image/png'));
        }
        default:
          Notification.warning('This image has no file, URL or embedded data to send.', { autoClose: 8000 });
          return null;
      }
    }

    /**
     * Insert the cell for what `produce` names (null: nothing to insert, already said why); a path or URL
     * needs the running kernel to have the magic, a stamped `@N:K` says it has.
     */
    async function askWith(panel: NotebookPanel, cell: Cell, produce: () => Promise<string | null>): Promise<void> {
      try {
        const what = await produce();
        if (what) {
          if (!what.startsWith('@')) {
            await ensureMagic(panel);
          }
          insertAskCell(panel, cell, what);
        }
      } catch (error) {
        Notification.error(`Could not save the image next to the notebook: ${reason(error)}`, { autoClose: 10000 });
      }
    }

    async function askAbout(img: HTMLImageElement): Promise<void> {
      const panel = panelOf(img);
      const cell = panel && cellOf(panel, img);
      if (!panel || !cell) {
        return;
      }
      const index = cell instanceof CodeCell ? outputIndex(cell, img) : -1;
      if (cell instanceof CodeCell && index >= 0 && isImageBundle(Object.keys(cell.outputArea.model.get(index).data))) {
        await askWith(panel, cell, () => sourceForOutput(panel, cell, index));
      } else {
        await askWith(panel, cell, () => sourceForSrc(panel, img));
      }
    }

    const clickedImage = (): HTMLImageElement | null =>
      (app.contextMenuHitTest(node => node.tagName === 'IMG') as HTMLImageElement | undefined) ?? null;
    const broken = (img: HTMLImageElement) => img.complete && img.naturalWidth === 0;

    app.commands.addCommand(ASK_IMAGE, {
      label: () => {
        const img = clickedImage();
        return img && broken(img) ? 'Ask about this image (it did not load)' : 'Ask about this image';
      },
      caption: 'Insert an %%ask_image cell below, naming this image',
      isEnabled: () => {
        const img = clickedImage();
        return img === null || !broken(img);
      },
      execute: async () => {
        const img = clickedImage();
        if (img) {
          await askAbout(img);
        }
      }
    });

    app.commands.addCommand(ASK_LAST, {
      label: 'Ask about the last image of this cell',
      caption: "Insert an %%ask_image cell below the active cell, naming its last image output",
      isEnabled: () => tracker.activeCell !== null,
      execute: async () => {
        const panel = tracker.currentWidget;
        const cell = tracker.activeCell;
        if (!panel || !cell) {
          return;
        }
        if (cell instanceof CodeCell) {
          const outputs = cell.outputArea.model;
          for (let i = outputs.length - 1; i >= 0; i--) {
            if (isImageBundle(Object.keys(outputs.get(i).data))) {
              await askWith(panel, cell, () => sourceForOutput(panel, cell, i));
              return;
            }
          }
        }
        const imgs = cell.node.querySelectorAll<HTMLImageElement>('.jp-RenderedMarkdown img, .jp-OutputArea-output img');
        if (imgs.length > 0) {
          await askAbout(imgs[imgs.length - 1]);
        } else {
          Notification.info('This cell shows no image to ask about.', { autoClose: 5000 });
        }
      }
    });

    for (const selector of ['.jp-Notebook .jp-OutputArea-output img', '.jp-Notebook .jp-MarkdownCell .jp-RenderedMarkdown img']) {
      app.contextMenu.addItem({ command: ASK_IMAGE, selector, rank: 0 });
    }
    for (const selector of ['.jp-Notebook .jp-CodeCell:not(.jp-mod-noOutputs)', '.jp-Notebook .jp-MarkdownCell']) {
      app.contextMenu.addItem({ command: ASK_LAST, selector, rank: 100 });
    }
    if (palette) {
      palette.addItem({ command: ASK_LAST, category: 'vision_magic' });
    }

    // ---- paste and drop into an %%ask_image cell ------------------------------------------------------
    const askCell = (panel: NotebookPanel, target: EventTarget | null): Cell | null => {
      const cell = target instanceof Node ? cellOf(panel, target) : null;
      return cell && cell.model.type === 'code' && isAskImageCell(cell.model.sharedModel.getSource()) ? cell : null;
    };
    const imageFiles = (data: DataTransfer | null): File[] =>
      Array.from(data?.files ?? []).filter(file => file.type.startsWith('image/') || IMAGE_FILE.test(file.name));

    async function attach(panel: NotebookPanel, cell: Cell, files: File[], pasted: boolean): Promise<void> {
      const paths: string[] = [];
      for (const file of files) {
        const ext = extensionFor(file.type);
        const generic = pasted && (!file.name || /^image\.\w+$/i.test(file.name));
        const name = generic ? pastedName(new Date(), ext) : safeFileName(file.name, pastedName(new Date(), ext));
        try {
          paths.push(await saveImage(panel, new Uint8Array(await file.arrayBuffer()), name, false));
        } catch (error) {
          Notification.error(
            `Could not save ${pasted ? 'the pasted image' : file.name} in ${settings.imagesFolder}/ next to the notebook: ${reason(error)}`,
            { autoClose: 10000 }
          );
        }
      }
      addPaths(cell, paths);
    }

    function addPaths(cell: Cell, paths: string[]): void {
      if (paths.length > 0) {
        const shared = cell.model.sharedModel;
        shared.setSource(addPathsToMagicLine(shared.getSource(), paths));
      }
    }

    function watch(panel: NotebookPanel): void {
      panel.sessionContext.iopubMessage.connect((_, msg) => {
        if (msg.header.session) {
          kernelSessions.set(panel, msg.header.session);
        }
      });
      panel.sessionContext.kernelChanged.connect(() => kernelSessions.delete(panel));
      const node = panel.content.node;
      node.addEventListener(
        'paste',
        (event: ClipboardEvent) => {
          const cell = askCell(panel, event.target);
          const files = cell ? imageFiles(event.clipboardData) : [];
          if (cell && files.length > 0) {
            event.preventDefault();
            event.stopPropagation();
            void attach(panel, cell, files, true);
          }
        },
        true
      );
      node.addEventListener(
        'dragover',
        (event: DragEvent) => {
          if (askCell(panel, event.target) && event.dataTransfer?.types.includes('Files')) {
            event.preventDefault();
          }
        },
        true
      );
      node.addEventListener(
        'drop',
        (event: DragEvent) => {
          const cell = askCell(panel, event.target);
          const files = cell ? imageFiles(event.dataTransfer) : [];
          if (cell && files.length > 0) {
            event.preventDefault();
            event.stopPropagation();
            void attach(panel, cell, files, false);
          }
        },
        true
      );
      // files dragged from JupyterLab's file browser are already on the server: name them
      const fromBrowser = (event: Event): string[] => {
        const data = (event as unknown as { mimeData?: { hasData(m: string): boolean; getData(m: string): unknown } })
          .mimeData;
        const paths = data?.hasData(CONTENTS_MIME) ? (data.getData(CONTENTS_MIME) as string[]) : [];
        return paths.filter(path => IMAGE_FILE.test(path));
      };
      const accept = (event: Event) => {
        if (askCell(panel, event.target) && fromBrowser(event).length > 0) {
          event.preventDefault();
          event.stopPropagation();
          // the file browser offers only 'move'; the drop target decides what happens (nothing is moved)
          const drag = event as unknown as { dropAction: string; proposedAction: string };
          drag.dropAction = drag.proposedAction;
        }
      };
      node.addEventListener('lm-dragenter', accept, true);
      node.addEventListener('lm-dragover', accept, true);
      node.addEventListener(
        'lm-drop',
        (event: Event) => {
          const cell = askCell(panel, event.target);
          const paths = cell ? fromBrowser(event) : [];
          if (cell && paths.length > 0) {
            accept(event);
            addPaths(cell, paths.map(path => relative(dirname(panel.context.path), path)));
          }
        },
        true
      );
    }
    tracker.widgetAdded.connect((_, panel) => watch(panel));
    tracker.forEach(watch);
  }
};

export default plugin;
