import sys

from mer_core.cli import main

sys.exit(main())
