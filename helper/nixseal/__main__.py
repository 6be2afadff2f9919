import sys

from nixseal.cli import main

sys.exit(main())
