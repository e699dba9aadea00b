"""Running the services.

    launch  starting a service as a process and reading its ready line
    status  what status.sh prints: each service's Stats, up, degraded or down
    etcd    a local etcd cluster for replicated databases (development, tests)
"""
