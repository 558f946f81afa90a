import click
@click.group() 
def scene(): pass
