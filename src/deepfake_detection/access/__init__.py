"""Who may do what on a shared tracking server: MLflow's basic-auth, three roles, one extra rule.

Split by where the code runs, as MLflow splits ``mlflow.server.auth`` from its client:

- :mod:`.client`: the checks this project's commands make before any work (who is logged in,
  which permission they hold), over plain REST with MLflow's own credentials
  (``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``). Against a server without
  authentication (or a local store) every check passes: there is no one to ask.
- :mod:`.admin`: ``deepfake-detection access init / grant / show``, the admin's roles and users.
- :mod:`.server`: the plugin that runs inside ``mlflow server --app-name deepfake-auth``: the
  registry's release decisions need MANAGE on the registered model.

Roles are MLflow roles (its RBAC API); each holds permissions on the experiment
``deepfake-detection``, on every ``deepfake-<arch>`` and on the experiment ``deepfake-comparisons``
(where readers log their compare runs):

- ``deepfake-reader``: READ, READ, EDIT
- ``deepfake-trainer``: EDIT, EDIT, EDIT
- ``deepfake-release-manager``: READ, MANAGE, EDIT
"""
