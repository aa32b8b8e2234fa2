"""The first code cell of every demo notebook: load the extension; without a key or server, a dry run."""

SETUP = (
    "import os\n"
    "import vision_magic\n\n"
    "%load_ext vision_magic\n"
    "%config VisionMagic.model = os.environ.get('VISION_MAGIC_MODEL', 'gpt-4o')\n"
    "if not (os.environ.get('OPENAI_API_KEY') or os.environ.get('OPENAI_BASE_URL')):\n"
    "    get_ipython().run_line_magic('config', 'VisionMagic.dry_run = True')\n"
    "    print('DRY RUN: no OPENAI_API_KEY or OPENAI_BASE_URL, so nothing is sent. To get answers: '\n"
    "          'export OPENAI_API_KEY=sk-... (or for Ollama: ollama pull qwen2.5vl, then export '\n"
    "          'OPENAI_BASE_URL=http://localhost:11434/v1 VISION_MAGIC_MODEL=qwen2.5vl) and re-run.')\n"
    "else:\n"
    "    print('Asking', vision_magic.settings().model, 'at', os.environ.get('OPENAI_BASE_URL', 'https://api.openai.com/v1'))"
)
