"""Where the real data for tests lives: `../shared` beside the repository (CI has it)."""

from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_FACES = SHARED / "faces"
SHARED_EVALUATORS = SHARED / "evaluators"
