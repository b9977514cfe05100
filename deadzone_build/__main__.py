import sys

from deadzone_build.cli import main

sys.exit(main())
