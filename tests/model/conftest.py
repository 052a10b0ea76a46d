import sys
from pathlib import Path

# Make tests/model importable as plain modules, as a user's own package would be.
sys.path.insert(0, str(Path(__file__).parent))
