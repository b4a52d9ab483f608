"""gunicorn settings of the README's production setup::

    gunicorn -c example_project/gunicorn.conf.py example_project.wsgi

Threaded workers (``gthread``): a client that trickles its request in holds one
thread, not a whole worker, so a few slow clients cannot freeze the server. In
production a buffering proxy (nginx, see the README) sits in front as well and
hands gunicorn only complete requests.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
# A worker that stops answering its arbiter for this long is replaced.
timeout = 30
graceful_timeout = 30
keepalive = 5
# gunicorn 24+ opens a control socket at one fixed path per user; several servers
# on one host would fight over it. Not used here.
control_socket_disable = True
