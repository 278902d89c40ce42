"""``python -m flow.machine [FOLDER]``: regenerate the diagrams from the specs."""

import sys
from pathlib import Path

from .diagram import write_diagrams

for path in write_diagrams(Path(sys.argv[1] if len(sys.argv) > 1 else "diagrams")):
    print(path)
