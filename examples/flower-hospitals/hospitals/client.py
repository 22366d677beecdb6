"""Each hospital's ClientApp: its own training code, with qfabric's protection added as a Flower mod.

The protection needs nothing from this code: the SuperNode's node config names the hospital's SAE identity
and KME (``qfabric-sae-id``, ``qfabric-kme-url``, ``qfabric-cert``, ``qfabric-key``, ``qfabric-ca``), and the
mod turns the reply below into a sealed, masked update (see ``qfabric.apps.federated.mod``).
"""

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from hospitals import task
from qfabric.apps.federated.mod import qfabric_protection_mod

app = ClientApp(mods=[qfabric_protection_mod()])  # the one line qfabric adds


def local_data(context: Context):
    """This hospital's training data: the file its node config names (``data-path``, written by ``python -m
    hospitals.task``), read with NumPy. Without one, its share of scikit-learn's breast-cancer set, loaded on the
    first message and kept in the node's Flower state (a SuperNode runs every message in a new ClientApp
    process, and importing scikit-learn's loaders takes 1-3 s)."""
    if context.node_config.get("data-path"):
        return task.load_file(str(context.node_config["data-path"]))
    if "hospital-data" not in context.state:
        run = context.run_config
        (X, y), _ = task.load_data(int(context.node_config["partition-id"]),
                                   [float(s) for s in str(run["data-shares"]).split(",")], int(run["data-seed"]))
        context.state["hospital-data"] = ArrayRecord([X, y])
    X, y = context.state["hospital-data"].to_numpy_ndarrays()
    return X, y


@app.train()
def train(msg: Message, context: Context) -> Message:
    cfg, run = msg.content["config"], context.run_config
    X, y = local_data(context)
    params, loss = task.train(msg.content["arrays"].to_numpy_ndarrays(), X, y, epochs=int(cfg["local-epochs"]),
                              batch_size=int(cfg["batch-size"]), learning_rate=float(cfg["learning-rate"]),
                              seed=int(run["data-seed"]) * 1000 + int(cfg["server-round"]))
    return Message(RecordDict({"arrays": ArrayRecord(params),
                               "metrics": MetricRecord({"train-loss": loss, "num-examples": len(y)})}),
                   reply_to=msg)
