"""fusegrad.optim: optimizers whose whole step runs in a few fused kernels, and LR schedulers."""
from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import Adagrad, RMSprop
from .sgd import SGD
