"""The old name of predict.py: it prints a one-line note and runs predict.py with the same arguments."""
import sys

import predict

if __name__ == "__main__":
    print("test.py is now predict.py; it runs the same", file=sys.stderr)
    predict.main()
