import sys

from dataclient.cli import main

sys.exit(main())
