# A character-level language model: embedding, a two-layer LSTM and a linear head, trained with
# Adam and gradient clipping on a short text, then sampled greedily one character at a time.
import torch
import torch.nn as nn
import torch.nn.functional as F

text = (
    "It was the season of long evenings, when the river ran slow and brown past the mill and the "
    "miller's daughter counted barges from the bridge. Some carried coal, some carried grain, and "
    "one, every spring, carried a painted theatre whose actors sang on deck as they passed. She "
    "learned their songs by heart, though she never learned their names, and she sang them to the "
    "wheel as it turned, slowly, through the long evenings of the season."
)
chars = sorted(set(text))
stoi = {c: i for i, c in enumerate(chars)}
itos = {i: c for c, i in stoi.items()}
data = torch.tensor([stoi[c] for c in text], dtype=torch.long)

block, batch = 16, 8


def get_batch(step):
    starts = (torch.arange(batch) * 37 + step * 11) % (len(data) - block - 1)
    x = torch.stack([data[s:s + block] for s in starts.tolist()])
    y = torch.stack([data[s + 1:s + 1 + block] for s in starts.tolist()])
    return x, y


class CharLSTM(nn.Module):
    def __init__(self, vocab, embed=16, hidden=64, layers=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, idx, state=None):
        out, state = self.lstm(self.embed(idx), state)
        return self.head(out), state


model = CharLSTM(len(chars))
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
for step in range(24):
    x, y = get_batch(step)
    logits, _ = model(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    if step % 4 == 0:
        print(f"step {step} loss {loss.item():.4f} grad norm {norm.item():.4f}")

model.eval()
with torch.no_grad():
    idx = torch.tensor([[stoi["I"]]])
    state = None
    out = []
    for _ in range(24):
        logits, state = model(idx, state)
        idx = logits[:, -1].argmax(-1, keepdim=True)
        out.append(itos[idx.item()])
    print("sample:", "".join(out))
