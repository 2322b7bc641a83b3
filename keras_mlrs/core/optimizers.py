"""TensorFlow 1's RMSProp as a Keras 3 optimizer, for every backend.

The study trained its models with TF1's ``tf.train.RMSPropOptimizer`` (learning rate
1e-4, batch size 1024). :class:`TF1RMSprop` applies the same update rule (the
``ApplyRMSProp`` and ``ApplyCenteredRMSProp`` kernels) with ``keras.ops``, so a model
trained here under TensorFlow or JAX follows the study's optimizer. For each variable
``var`` with gradient ``g``::

    ms  = rho * ms + (1 - rho) * g**2
    mg  = rho * mg + (1 - rho) * g                  # centered only
    den = ms + epsilon                              # centered: ms - mg**2 + epsilon
    mom = momentum * mom + lr * g / sqrt(den)
    var = var - mom

The slots start as TF1's do: ``ms`` at **ones**, ``mg`` and ``mom`` at zeros.

How ``keras.optimizers.RMSprop`` (Keras 3.15, ``keras/src/optimizers/rmsprop.py``)
differs: the update formula is the same (epsilon also sits inside the square root, the
momentum is the same heavy-ball accumulator), but

* its mean square (``velocity``) starts at **zeros** (``add_optimizer_variables``,
  default initializer, in ``build``). Its first step is then
  ``lr * g / sqrt(0.1 g**2 + eps)``, about ``lr * sign(g) * sqrt(10)`` for any
  ``|g|`` well above 1e-3, where TF1's is ``lr * g / sqrt(0.9 + 0.1 g**2 + eps)``: about
  ``lr * g`` for small gradients. After ``t`` steps the two mean squares differ by
  ``rho**t``, which matters until it is small next to ``g**2`` (for gradients near
  1e-2, about a hundred steps);
* its defaults are ``epsilon=1e-7`` (TF1: 1e-10) and ``learning_rate=1e-3`` (the study:
  1e-4).
"""

import keras
from keras import ops

__all__ = ["TF1RMSprop"]


@keras.saving.register_keras_serializable(package="keras_mlrs")
class TF1RMSprop(keras.optimizers.Optimizer):
    """RMSProp with TensorFlow 1's update rule and slot initialisation.

    Args:
        learning_rate: A float, a ``keras.optimizers.schedules.LearningRateSchedule`` or
            a callable of no arguments. The study's value, 1e-4, is the default.
        rho: Decay of the moving averages (TF1's ``decay``).
        momentum: Heavy-ball momentum; 0 (the study's value) applies each step directly.
        epsilon: Added to the mean square inside the square root.
        centered: Normalise by the estimated variance ``ms - mg**2`` instead of the mean
            square ``ms``.
        name: The optimizer's name.
        **kwargs: Keras' common optimizer arguments (``weight_decay``, ``clipnorm``,
            ``clipvalue``, ``global_clipnorm``, ``use_ema``, ``loss_scale_factor``,
            ``gradient_accumulation_steps``, ...).
    """

    def __init__(
        self,
        learning_rate=1e-4,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-10,
        centered=False,
        name="tf1_rmsprop",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._rms = self.add_optimizer_variables(var_list, "rms", initializer="ones")
        # With momentum 0, mom is just this step's increment: no slot is kept.
        self._momentums = (
            self.add_optimizer_variables(var_list, "momentum") if self.momentum > 0 else []
        )
        self._mean_grads = self.add_optimizer_variables(var_list, "mg") if self.centered else []

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        rho = self.rho

        ms = self._rms[index]
        self.assign(ms, ops.add(ops.multiply(rho, ms), ops.multiply(1 - rho, ops.square(g))))
        denominator = ms
        if self.centered:
            mg = self._mean_grads[index]
            self.assign(mg, ops.add(ops.multiply(rho, mg), ops.multiply(1 - rho, g)))
            denominator = ops.subtract(ms, ops.square(mg))
        increment = ops.divide(ops.multiply(lr, g), ops.sqrt(ops.add(denominator, self.epsilon)))

        if self.momentum > 0:
            mom = self._momentums[index]
            self.assign(mom, ops.add(ops.multiply(self.momentum, mom), increment))
            self.assign_sub(variable, mom)
        else:
            self.assign_sub(variable, increment)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "rho": self.rho,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "centered": self.centered,
            }
        )
        return config
