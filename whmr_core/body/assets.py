def body_assets(*a, **k): raise NotImplementedError
class BodyAssets: pass
