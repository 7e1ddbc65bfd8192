"""Knowledge distillation (Hinton et al., 2015): the student also matches the teacher's
temperature-softened outputs, which recovers more accuracy after pruning than labels alone."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class Distillation:
    """loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * hard-label loss."""

    teacher: nn.Module
    temperature: float = 4.0
    alpha: float = 0.7

    def __call__(
        self, hard_loss: torch.Tensor, student_logits: torch.Tensor, inputs: torch.Tensor
    ) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = self.teacher(inputs)
        t = self.temperature
        soft = F.kl_div(
            F.log_softmax(student_logits.float() / t, dim=1),
            F.log_softmax(teacher_logits.float() / t, dim=1),
            log_target=True,
            reduction="batchmean",
        )
        return self.alpha * soft * t * t + (1.0 - self.alpha) * hard_loss
