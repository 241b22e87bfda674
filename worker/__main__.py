"""`python -m worker`: run the failback worker until interrupted."""

from worker.main import main

main()
