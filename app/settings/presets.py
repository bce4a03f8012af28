"""Demo texts written for HAM Lab: each shows one thing the KV cache is (or is not) good for.

Short on purpose (a few hundred tokens) so they load instantly in front of a class.
"""
from __future__ import annotations

PRESETS: dict[str, str] = {
    "Story with a rare name": (
        "The ferry to the island left at dawn. On the lower deck sat a quiet woman called "
        "Thessaly Vandermeer, who carried a wooden box under her arm. The captain asked what "
        "was inside, and she only smiled. When the fog came in, the passengers went below, "
        "but Thessaly Vandermeer stayed at the rail and watched the water. Halfway across, the "
        "engine stopped. The captain shouted for help, and it was Thessaly who opened the box: "
        "it held a set of old brass tools. An hour later the engine ran again, and everyone on "
        "board wanted to know the name of the woman who had fixed it. \"Vandermeer,\" said the "
        "captain. \"Thessaly Vandermeer. Remember it.\"\n"
    ),
    "Facts, then questions": (
        "Facts about the village of Lowmere.\n"
        "The baker is called Orrin Pask.\n"
        "The bridge was built in 1874.\n"
        "The mayor keeps three goats named Tansy, Moss and Quill.\n"
        "The river that runs past the mill is the Brisk.\n"
        "The school has forty-two pupils.\n\n"
        "Questions.\n"
        "Who is the baker? The baker is Orrin Pask.\n"
        "When was the bridge built? The bridge was built in 1874.\n"
        "What are the goats called? They are called Tansy, Moss and Quill.\n"
        "Which river runs past the mill? The Brisk runs past the mill.\n"
        "How many pupils does the school have? It has forty-two pupils.\n"
    ),
    "Technical paragraph": (
        "A hash table stores each key in a bucket chosen by a hash function. When two keys "
        "land in the same bucket, the table must resolve the collision, either by chaining "
        "the entries in a short list or by probing for the next free slot. The load factor, "
        "the number of entries divided by the number of buckets, controls how often collisions "
        "happen. Once the load factor passes a limit such as 0.75, the table allocates a larger "
        "array and moves every entry, so that lookups stay close to constant time on average. "
        "A poor hash function that maps many keys to the same few buckets turns the table into "
        "a slow list, which is why production libraries mix the bits of the key carefully.\n"
    ),
    "Repetitive text": (
        "The cat sat on the mat. The cat sat on the mat. The cat sat on the mat. "
        "The cat sat on the mat. The cat sat on the mat. The cat sat on the mat. "
        "The cat sat on the mat. The cat sat on the mat. The dog sat on the mat. "
        "The cat sat on the mat. The cat sat on the mat. The cat sat on the mat. "
        "Row, row, row the boat. Row, row, row the boat. Row, row, row the boat. "
        "Row, row, row the boat. Row, row, row the boat. Row, row, row the boat.\n"
    ),
    "Numbers and dates": (
        "Expedition log, summer 1952.\n"
        "On 3 June 1952 the team left Tromso with 14 sledges and 212 dogs. "
        "By 19 June they had covered 486 kilometres at an average of 30.4 km per day. "
        "The coldest night, on 27 June, reached minus 31 degrees. "
        "On 2 July the radio failed; it was repaired on 5 July at 06:45. "
        "They reached the northern cape on 14 July 1952, 41 days after leaving, "
        "with 12 sledges, 198 dogs and 7 of the 9 original crates of fuel.\n"
        "Summary: 41 days, 486 kilometres to the midpoint, minus 31 degrees at worst.\n"
    ),
    "Code snippet": (
        "def moving_average(values, window):\n"
        "    \"\"\"Average of each run of `window` consecutive values.\"\"\"\n"
        "    if window <= 0:\n"
        "        raise ValueError(\"window must be positive\")\n"
        "    total = sum(values[:window])\n"
        "    averages = [total / window]\n"
        "    for i in range(window, len(values)):\n"
        "        total += values[i] - values[i - window]\n"
        "        averages.append(total / window)\n"
        "    return averages\n\n\n"
        "print(moving_average([3, 1, 4, 1, 5, 9, 2, 6], window=3))\n"
    ),
}

DEFAULT_PRESET = "Story with a rare name"
