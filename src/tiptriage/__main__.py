from tiptriage.cli import app

app()
