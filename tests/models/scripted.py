"""A model backend whose answers a test scripts: `answer(request) -> Generation`."""


class Scripted:
    name = "scripted"

    def __init__(self, answer):
        self.answer = answer

    async def generate(self, requests):
        return [self.answer(r) for r in requests]

    async def aclose(self):
        return None
