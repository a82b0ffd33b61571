"""The device's own skills: time, date, timers, alarms, volume, stop and repeat, without the LLM.

`Skills` is the whole interface for the turn loop; see `assistant.skills.skills`.
"""

from assistant.skills.replies import Action, SkillReply
from assistant.skills.skills import Skills, system_calendar
from assistant.skills.timers import Ringing

__all__ = ["Action", "Ringing", "SkillReply", "Skills", "system_calendar"]
