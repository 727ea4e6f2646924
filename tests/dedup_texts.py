"""Questions planted as duplicates and as distinct questions, shared by the unit and the integration dedup tests.

None of them is one of the question-writer prompt's examples (those are seeded as originals and tested apart).
"""

from __future__ import annotations

STARTER = (
    "My kombucha has grown a thick white film and smells faintly of vinegar after nine days at room temperature. "
    "Is this mould or a healthy new culture, and how should I change the brewing time to fix it?"
)
STARTER_WORD = STARTER.replace("nine days", "ten days")  # a word changed
STARTER_PUNCT = STARTER.upper().replace(",", "").replace("?", " ?!").replace("  ", " ")  # case and punctuation
RESTAURANT = (
    "我要给一家新开的粤菜馆设计白切鸡的标准化出品流程，"
    "要求每份口感稳定、出餐时间不超过五分钟，请给出原料配比和操作步骤。"
)
RESTAURANT_CHAR = RESTAURANT.replace("五分钟", "六分钟")  # one Chinese character changed
DISTINCT = [
    # same topic, different question: must stay unmarked
    "How often should I feed a kombucha culture that I keep in the fridge between monthly brews?",
    "Design a two-week schedule for reviving a dried kombucha culture, and explain the microbiology.",
    "我要给一家新开的湘菜馆设计剁椒鱼头的出品流程，重点是如何保证鱼头火候一致，请说明原因。",
    "请你扮演一位大学辅导员，跟我聊聊大一新生选社团时最需要注意什么。",
]
